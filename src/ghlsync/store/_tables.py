"""Foundation tables: GHL connections (tokens, encrypted) and the shared rate budget.

The engine's tables live in `_tables_engine.py` on the same `metadata`.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

# One row per GHL resource we hold a token for: a location (sub-account) or a company (agency).
ghl_connections = sa.Table(
    "ghl_connections",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),  # location id or company id
    sa.Column("user_type", sa.String(16), nullable=False),  # "Location" | "Company"
    sa.Column("kind", sa.String(16), nullable=False),  # "oauth" | "private"
    sa.Column("company_id", sa.String(64)),
    sa.Column("access_token", sa.LargeBinary, nullable=False),  # encrypted
    sa.Column("refresh_token", sa.LargeBinary),  # encrypted; rotates, single-use
    sa.Column("expires_at", sa.Float),  # epoch seconds
    sa.Column("scopes", sa.Text),
    sa.Column("status", sa.String(32), nullable=False, server_default="active"),
    sa.Column("status_message", sa.Text),
    sa.Column("key_id", sa.String(32)),  # which encryption key sealed the tokens
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("environment", sa.String(32)),  # 0012: the environment it belongs to
)

# One row per rate-limit key (location or company), shared by every process: what GHL's
# headers said (limits, 429 pause, daily count). `tat_ms` is unused since the slot limiter.
rate_budget = sa.Table(
    "rate_budget",
    metadata,
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

# One row per request a key's window allows (migration 0013): the shared limiter takes a free
# slot per request and frees it an interval after the answer (`ghl/_ratelimit/_sql.py`).
rate_slots = sa.Table(
    "rate_slots",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("slot", sa.Integer, primary_key=True),
    sa.Column("free_at_ms", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("in_flight", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("taken_ms", sa.BigInteger, nullable=False, server_default="0"),
)

# GHL webhook ids already accepted, for replay rejection.
ghl_webhooks_seen = sa.Table(
    "ghl_webhooks_seen",
    metadata,
    sa.Column("webhook_id", sa.String(128), primary_key=True),
    sa.Column("seen_at", sa.Float, nullable=False, index=True),  # pruned by age
)
