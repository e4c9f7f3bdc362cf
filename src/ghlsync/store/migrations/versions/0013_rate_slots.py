"""Rate slots: one row per request GHL's window allows a key (the shared limiter's mirror).

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the table."""
    op.create_table(
        "rate_slots",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("slot", sa.Integer, primary_key=True),
        sa.Column("free_at_ms", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("in_flight", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("taken_ms", sa.BigInteger, nullable=False, server_default="0"),
    )


def downgrade() -> None:
    """Drop it."""
    op.drop_table("rate_slots")
