"""GHL API version per location: `locations.api_version` ("v2" or "v3"; docs/api-versions.md).

NULL: the location uses the config's `ghl.api_version` (v2 unless set).

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the column."""
    op.add_column("locations", sa.Column("api_version", sa.String(8)))


def downgrade() -> None:
    """Drop it."""
    with op.batch_alter_table("locations") as batch:
        batch.drop_column("api_version")
