"""Location settings cache: `ghl_location_settings` (GHL's duplicate-contact rule).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the settings cache."""
    op.create_table(
        "ghl_location_settings",
        sa.Column("location_id", sa.String(64), primary_key=True),
        sa.Column("allow_duplicate_contact", sa.Boolean),
        sa.Column("fetched_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    """Drop it."""
    op.drop_table("ghl_location_settings")
