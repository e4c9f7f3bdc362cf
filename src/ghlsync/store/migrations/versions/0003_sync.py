"""Sync tables: id_map, sync_state, ghl_custom_fields.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the flows' tables."""
    op.create_table(
        "id_map",
        sa.Column("location_id", sa.String(64), primary_key=True),
        sa.Column("entity_type", sa.String(32), primary_key=True),
        sa.Column("source_id", sa.String(128), primary_key=True),
        sa.Column("ghl_id", sa.String(64)),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("pending_body", sa.Text),
        sa.Column("pending_since", sa.Float),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_index("ix_id_map_ghl", "id_map", ["location_id", "entity_type", "ghl_id"])
    op.create_table(
        "sync_state",
        sa.Column("location_id", sa.String(64), primary_key=True),
        sa.Column("entity_type", sa.String(32), primary_key=True),
        sa.Column("source_id", sa.String(128), primary_key=True),
        sa.Column("side", sa.String(16), primary_key=True),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("source_updated_at", sa.Float),
        sa.Column("snapshot", sa.Text, nullable=False, server_default="{}"),
        sa.Column("synced_at", sa.Float, nullable=False),
    )
    op.create_table(
        "ghl_custom_fields",
        sa.Column("location_id", sa.String(64), primary_key=True),
        sa.Column("field_key", sa.String(255), primary_key=True),
        sa.Column("field_id", sa.String(64), nullable=False),
        sa.Column("data_type", sa.String(32)),
        sa.Column("fetched_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    """Drop the flows' tables."""
    op.drop_table("ghl_custom_fields")
    op.drop_table("sync_state")
    op.drop_index("ix_id_map_ghl", table_name="id_map")
    op.drop_table("id_map")
