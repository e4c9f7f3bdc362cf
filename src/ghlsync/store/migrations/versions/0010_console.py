"""Console sign-in: `console_admin` (the admin password's scrypt hash and the cookie key).

Revision ID: 0010
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the table (one row at most)."""
    op.create_table(
        "console_admin",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("password_hash", sa.Text, nullable=False),
        sa.Column("session_key", sa.String(64), nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    """Drop it."""
    op.drop_table("console_admin")
