"""Two-way sync: `writeback_outbox`, `ghl_records`, `ghl_changes`; an index on id_map states.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Create the two-way tables."""
    op.create_table(
        "writeback_outbox",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("location_id", sa.String(64), nullable=False),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("dedupe_key", sa.String(200), nullable=False),
        sa.Column("ghl_entity", sa.String(32), nullable=False),
        sa.Column("ghl_id", sa.String(64), nullable=False),
        sa.Column("match_email", sa.String(255)),
        sa.Column("match_phone", sa.String(64)),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("available_at", sa.Float, nullable=False),
        sa.Column("lease_owner", sa.String(128)),
        sa.Column("lease_expires_at", sa.Float),
        sa.Column("last_status", sa.Integer),
        sa.Column("last_error", sa.Text),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("delivered_at", sa.Float),
        sa.Column("replayed_at", sa.Float),
        sa.UniqueConstraint("location_id", "dedupe_key", name="uq_writeback_dedupe"),
    )
    op.create_index("ix_writeback_due", "writeback_outbox", ["status", "available_at"])
    op.create_index("ix_writeback_ghl", "writeback_outbox", ["location_id", "ghl_entity", "ghl_id"])
    op.create_index("ix_writeback_email", "writeback_outbox", ["location_id", "match_email"])
    op.create_index("ix_writeback_phone", "writeback_outbox", ["location_id", "match_phone"])
    op.create_table(
        "ghl_records",
        sa.Column("location_id", sa.String(64), primary_key=True),
        sa.Column("entity_type", sa.String(32), primary_key=True),
        sa.Column("ghl_id", sa.String(64), primary_key=True),
        sa.Column("fields", sa.Text, nullable=False, server_default="{}"),
        sa.Column("pending", sa.Text, nullable=False, server_default="{}"),
        sa.Column("version", sa.Float),
        sa.Column("deleted_at", sa.Float),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_table(
        "ghl_changes",
        sa.Column("id", _BigId, primary_key=True, autoincrement=True),
        sa.Column("location_id", sa.String(64), nullable=False),
        sa.Column("side", sa.String(16), nullable=False),
        sa.Column("entity_type", sa.String(32), nullable=False),
        sa.Column("ghl_id", sa.String(64), nullable=False),
        sa.Column("event", sa.String(64), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("changed_at", sa.Float),
        sa.Column("recorded_at", sa.Float, nullable=False),
    )
    op.create_index("ix_ghl_changes_location", "ghl_changes", ["location_id", "recorded_at"])
    op.create_index("ix_id_map_state", "id_map", ["location_id", "entity_type", "state"])


def downgrade() -> None:
    """Drop them."""
    op.drop_index("ix_id_map_state", table_name="id_map")
    op.drop_table("ghl_changes")
    op.drop_table("ghl_records")
    op.drop_table("writeback_outbox")
