"""Locations and their DripJobs connections.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create `locations` and `dripjobs_connections`."""
    op.create_table(
        "locations",
        sa.Column("location_id", sa.String(64), primary_key=True),
        sa.Column("company_id", sa.String(64)),
        sa.Column("name", sa.Text),
        sa.Column("status", sa.String(16), nullable=False, server_default="active"),
        sa.Column("calendar_id", sa.String(64)),
        sa.Column("mapping_override", sa.Text),
        sa.Column("installed_at", sa.Float, nullable=False),
        sa.Column("uninstalled_at", sa.Float),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_index("ix_locations_company", "locations", ["company_id"])
    op.create_table(
        "dripjobs_connections",
        sa.Column("connection_id", sa.String(64), primary_key=True),
        sa.Column("location_id", sa.String(64), nullable=False),
        sa.Column("secret", sa.LargeBinary, nullable=False),
        sa.Column("key_id", sa.String(32)),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("revoked_at", sa.Float),
    )
    op.create_index("ix_dripjobs_connections_location", "dripjobs_connections", ["location_id"])


def downgrade() -> None:
    """Drop them."""
    op.drop_index("ix_dripjobs_connections_location", table_name="dripjobs_connections")
    op.drop_table("dripjobs_connections")
    op.drop_index("ix_locations_company", table_name="locations")
    op.drop_table("locations")
