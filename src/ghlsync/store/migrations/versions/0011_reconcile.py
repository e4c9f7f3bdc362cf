"""Periodic reconcile sweeps: `reconcile_sweeps` (cursor and last findings per location).

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the table."""
    op.create_table(
        "reconcile_sweeps",
        sa.Column("location_id", sa.String(64), primary_key=True),
        sa.Column("cursor", sa.Text),
        sa.Column("contacts_seen", sa.Integer, nullable=False, server_default="0"),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("finished_at", sa.Float),
        sa.Column("findings", sa.Text, nullable=False, server_default="{}"),
        sa.Column("complete", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("owner", sa.String(128)),
        sa.Column("updated_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    """Drop it."""
    op.drop_table("reconcile_sweeps")
