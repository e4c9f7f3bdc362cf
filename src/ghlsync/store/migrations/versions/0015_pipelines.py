"""Opportunity pipelines per location, read from GHL and kept in the store (one row per
location: the pipelines and stages as JSON, and when they were read).

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the table."""
    op.create_table(
        "ghl_pipelines",
        sa.Column("location_id", sa.String(64), primary_key=True),
        sa.Column("pipelines", sa.Text, nullable=False),
        sa.Column("fetched_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    """Drop it."""
    op.drop_table("ghl_pipelines")
