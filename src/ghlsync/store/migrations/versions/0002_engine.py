"""Engine tables: inbox, work_items, dead_letters, audit_log.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Create the engine's tables."""
    _inbox()
    _work_items()
    _dead_letters()
    _audit_log()


def downgrade() -> None:
    """Drop the engine's tables."""
    op.drop_index("ix_audit_location_at", table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_index("ix_dead_letters_work_id", table_name="dead_letters")
    op.drop_index("ix_dead_letters_location", table_name="dead_letters")
    op.drop_table("dead_letters")
    op.drop_index("ix_work_claim", table_name="work_items")
    op.drop_table("work_items")
    op.drop_index("ix_inbox_work_id", table_name="inbox")
    op.drop_index("ix_inbox_received_at", table_name="inbox")
    op.drop_table("inbox")


def _inbox() -> None:
    op.create_table(
        "inbox",
        sa.Column("id", _BigId, primary_key=True, autoincrement=True),
        sa.Column("connection_id", sa.String(64), nullable=False),
        sa.Column("delivery_key", sa.String(160), nullable=False),
        sa.Column("location_id", sa.String(64), nullable=False),
        sa.Column("event", sa.String(64), nullable=False),
        sa.Column("entity_type", sa.String(32), nullable=False),
        sa.Column("source_id", sa.String(128), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("source_updated_at", sa.Float),
        sa.Column("received_at", sa.Float, nullable=False),
        sa.Column("work_id", sa.BigInteger),
        sa.UniqueConstraint("connection_id", "delivery_key", name="uq_inbox_delivery"),
    )
    op.create_index("ix_inbox_received_at", "inbox", ["received_at"])
    op.create_index("ix_inbox_work_id", "inbox", ["work_id"])


def _work_items() -> None:
    op.create_table(
        "work_items",
        sa.Column("id", _BigId, primary_key=True, autoincrement=True),
        sa.Column("location_id", sa.String(64), nullable=False),
        sa.Column("entity_type", sa.String(32), nullable=False),
        sa.Column("source_id", sa.String(128), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("generation", sa.Integer, nullable=False, server_default="1"),
        sa.Column("done_generation", sa.Integer),
        sa.Column("event", sa.String(64), nullable=False),
        sa.Column("events", sa.Text, nullable=False, server_default="[]"),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("stamps", sa.Text, nullable=False, server_default="{}"),
        sa.Column("source_updated_at", sa.Float),
        sa.Column("available_at", sa.Float, nullable=False),
        sa.Column("lease_owner", sa.String(128)),
        sa.Column("lease_token", sa.String(36)),
        sa.Column("lease_expires_at", sa.Float),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.UniqueConstraint("location_id", "entity_type", "source_id", name="uq_work_entity"),
    )
    op.create_index("ix_work_claim", "work_items", ["status", "location_id", "available_at"])


def _dead_letters() -> None:
    op.create_table(
        "dead_letters",
        sa.Column("id", _BigId, primary_key=True, autoincrement=True),
        sa.Column("work_id", sa.BigInteger, nullable=False),
        sa.Column("location_id", sa.String(64), nullable=False),
        sa.Column("entity_type", sa.String(32), nullable=False),
        sa.Column("source_id", sa.String(128), nullable=False),
        sa.Column("event", sa.String(64), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("error_class", sa.String(128), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("replayed_at", sa.Float),
    )
    op.create_index("ix_dead_letters_location", "dead_letters", ["location_id", "created_at"])
    op.create_index("ix_dead_letters_work_id", "dead_letters", ["work_id"])


def _audit_log() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", _BigId, primary_key=True, autoincrement=True),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("location_id", sa.String(64), nullable=False),
        sa.Column("entity_type", sa.String(32), nullable=False),
        sa.Column("source_id", sa.String(128), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("ghl_id", sa.String(64)),
        sa.Column("calls", sa.Integer, nullable=False, server_default="0"),
        sa.Column("detail", sa.Text),
    )
    op.create_index("ix_audit_location_at", "audit_log", ["location_id", "at"])
