"""Engine tables: the inbox, one work row per entity, dead letters and the audit log.

- `inbox`: every accepted delivery, once (UNIQUE connection + delivery key), kept for replay
  and re-mapping.
- `work_items`: the queue. One row per (location, entity type, source id): repeated events for
  one entity merge into it (payload, latest event, `generation` bumped per delivery), so one
  entity is never processed twice at once and an older update never follows a newer one.
- `dead_letters`: work that cannot succeed as it is, with a reason people can read.
- `audit_log`: what the worker did per entity (created, updated, skipped, dead, ...).

Times are epoch seconds (floats) from the engine's clock, like the foundation tables.
JSON columns are text (`json.dumps`), identical on SQLite and PostgreSQL.
"""

from __future__ import annotations

import sqlalchemy as sa

from ghlsync.store._tables import metadata

# BIGINT ids on PostgreSQL; SQLite only auto-increments a column declared INTEGER.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

inbox = sa.Table(
    "inbox",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("connection_id", sa.String(64), nullable=False),
    sa.Column(
        "delivery_key", sa.String(160), nullable=False
    ),  # "id:<delivery id>" | "idsha256:<hex of an id over 150 chars>" | "sha256:<hex>"
    sa.Column("location_id", sa.String(64), nullable=False),
    sa.Column("event", sa.String(64), nullable=False),
    sa.Column("entity_type", sa.String(32), nullable=False),
    sa.Column("source_id", sa.String(128), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),  # JSON, keys folded to snake_case
    sa.Column("source_updated_at", sa.Float),
    sa.Column("received_at", sa.Float, nullable=False),
    sa.Column("work_id", sa.BigInteger),
    sa.UniqueConstraint("connection_id", "delivery_key", name="uq_inbox_delivery"),
    sa.Index("ix_inbox_received_at", "received_at"),
    sa.Index("ix_inbox_work_id", "work_id"),
)

work_items = sa.Table(
    "work_items",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("location_id", sa.String(64), nullable=False),
    sa.Column("entity_type", sa.String(32), nullable=False),
    sa.Column("source_id", sa.String(128), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # pending | leased | done | dead
    sa.Column("generation", sa.Integer, nullable=False, server_default="1"),
    sa.Column("done_generation", sa.Integer),
    sa.Column("event", sa.String(64), nullable=False),  # the effective (latest) event
    sa.Column("events", sa.Text, nullable=False, server_default="[]"),  # JSON [[event, rank]]
    sa.Column("payload", sa.Text, nullable=False),  # JSON, merged across deliveries
    sa.Column("stamps", sa.Text, nullable=False, server_default="{}"),  # JSON field -> updated_at
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
    # The id last (migration 0017): the claim's `ORDER BY available_at, id LIMIT k` per
    # location reads the index in order and stops after k rows.
    sa.Index("ix_work_claim", "status", "location_id", "available_at", "id"),
)

dead_letters = sa.Table(
    "dead_letters",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
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
    sa.Index("ix_dead_letters_location", "location_id", "created_at"),
    sa.Index("ix_dead_letters_work_id", "work_id"),
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("location_id", sa.String(64), nullable=False),
    sa.Column("entity_type", sa.String(32), nullable=False),
    sa.Column("source_id", sa.String(128), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("ghl_id", sa.String(64)),
    sa.Column("calls", sa.Integer, nullable=False, server_default="0"),
    sa.Column("detail", sa.Text),
    sa.Index("ix_audit_location_at", "location_id", "at"),
)

# Live worker processes (migration 0005): each `ghlsync worker` upserts its row every few
# seconds and deletes it on a clean exit, so `ghlsync status` and `/healthz` can list the
# workers of every machine; a row whose heartbeat went stale is a worker that died.
workers = sa.Table(
    "workers",
    metadata,
    sa.Column("worker_id", sa.String(128), primary_key=True),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("heartbeat_at", sa.Float, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),  # running | draining
    sa.Column("in_flight", sa.Integer, nullable=False, server_default="0"),
    sa.Column("processed", sa.BigInteger, nullable=False, server_default="0"),
)
