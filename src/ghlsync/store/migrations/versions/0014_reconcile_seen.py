"""Reconcile: the mapped GHL contacts a sweep under way has seen, so a resumed one still
finds deletions.

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the table."""
    op.create_table(
        "reconcile_seen",
        sa.Column("location_id", sa.String(64), primary_key=True),
        sa.Column("ghl_id", sa.String(64), primary_key=True),
    )


def downgrade() -> None:
    """Drop it."""
    op.drop_table("reconcile_seen")
