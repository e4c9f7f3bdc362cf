"""Foundation tables: GHL connections (encrypted tokens), shared rate budget, seen webhooks.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ghl_connections",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("user_type", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("company_id", sa.String(64)),
        sa.Column("access_token", sa.LargeBinary, nullable=False),
        sa.Column("refresh_token", sa.LargeBinary),
        sa.Column("expires_at", sa.Float),
        sa.Column("scopes", sa.Text),
        sa.Column("status", sa.String(32), nullable=False, server_default="active"),
        sa.Column("status_message", sa.Text),
        sa.Column("key_id", sa.String(32)),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_table(
        "rate_budget",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("tat_ms", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("paused_until_ms", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("max", sa.Integer, nullable=False, server_default="100"),
        sa.Column("interval_ms", sa.Integer, nullable=False, server_default="10000"),
        sa.Column("remaining", sa.Integer),
        sa.Column("daily_limit", sa.Integer, nullable=False, server_default="200000"),
        sa.Column("daily_remaining", sa.Integer),
        sa.Column("throttled", sa.Integer, nullable=False, server_default="0"),
        sa.Column("consecutive_429", sa.Integer, nullable=False, server_default="0"),
        sa.Column("updated_ms", sa.BigInteger, nullable=False, server_default="0"),
    )
    op.create_table(
        "ghl_webhooks_seen",
        sa.Column("webhook_id", sa.String(128), primary_key=True),
        sa.Column("seen_at", sa.Float, nullable=False),
    )
    op.create_index("ix_ghl_webhooks_seen_seen_at", "ghl_webhooks_seen", ["seen_at"])


def downgrade() -> None:
    op.drop_index("ix_ghl_webhooks_seen_seen_at", table_name="ghl_webhooks_seen")
    op.drop_table("ghl_webhooks_seen")
    op.drop_table("rate_budget")
    op.drop_table("ghl_connections")
