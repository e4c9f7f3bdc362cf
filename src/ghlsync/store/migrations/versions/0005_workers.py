"""Live workers: the `workers` heartbeat table.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the heartbeat table."""
    op.create_table(
        "workers",
        sa.Column("worker_id", sa.String(128), primary_key=True),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("heartbeat_at", sa.Float, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("in_flight", sa.Integer, nullable=False, server_default="0"),
        sa.Column("processed", sa.BigInteger, nullable=False, server_default="0"),
    )


def downgrade() -> None:
    """Drop it."""
    op.drop_table("workers")
