"""Two-way sync tables (migration 0007): the write-back outbox and what GHL holds.

- `writeback_outbox`: one row per write-back to DripJobs (a signed POST to a Zapier Catch
  Hook). The row, with the exact body and its `id` (the `webhook-id` of every retry), is
  committed *before* the first POST, so a crash between "sent" and "recorded" is resolved
  by sending the same id again (the receiver dedupes by webhook-id), never by a second
  write-back. UNIQUE(`location_id`, `dedupe_key`): a GHL contact becomes at most one
  `create_lead`, however often GHL retries its webhook.
- `ghl_records`: per GHL record, the last values GHL was seen (or made) to hold, the newest
  GHL event time applied (ordering), a tombstone, and `pending`: GHL-side field changes that
  DripJobs has not received (no DripJobs action can take them) with their times, which the
  field owner rules weigh against later DripJobs changes.
- `ghl_changes`: GHL-side changes DripJobs cannot receive, kept with their source side (a
  note or task added in GHL, a phone changed in GHL), for `ghlsync status`.
"""

from __future__ import annotations

import sqlalchemy as sa

from ghlsync.store._tables import metadata
from ghlsync.store._tables_engine import BigId

writeback_outbox = sa.Table(
    "writeback_outbox",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),  # "wb_<32 hex>": the webhook-id
    sa.Column("location_id", sa.String(64), nullable=False),
    sa.Column("action", sa.String(40), nullable=False),
    sa.Column("dedupe_key", sa.String(200), nullable=False),
    sa.Column("ghl_entity", sa.String(32), nullable=False),
    sa.Column("ghl_id", sa.String(64), nullable=False),
    sa.Column("match_email", sa.String(255)),  # lower-cased, for the lead.created echo check
    sa.Column("match_phone", sa.String(64)),  # digits only, likewise
    sa.Column("body", sa.Text, nullable=False),  # the exact JSON sent on every attempt
    # pending | sending | delivered | skipped | dead
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
    sa.Index("ix_writeback_due", "status", "available_at"),
    sa.Index("ix_writeback_ghl", "location_id", "ghl_entity", "ghl_id"),
    sa.Index("ix_writeback_email", "location_id", "match_email"),
    sa.Index("ix_writeback_phone", "location_id", "match_phone"),
)

ghl_records = sa.Table(
    "ghl_records",
    metadata,
    sa.Column("location_id", sa.String(64), primary_key=True),
    sa.Column("entity_type", sa.String(32), primary_key=True),  # contact | appointment | ...
    sa.Column("ghl_id", sa.String(64), primary_key=True),
    sa.Column("fields", sa.Text, nullable=False, server_default="{}"),  # JSON, GHL names
    sa.Column("pending", sa.Text, nullable=False, server_default="{}"),  # {field: {value, at}}
    sa.Column("version", sa.Float),  # newest GHL event time applied
    sa.Column("deleted_at", sa.Float),
    sa.Column("updated_at", sa.Float, nullable=False),
)

ghl_changes = sa.Table(
    "ghl_changes",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("location_id", sa.String(64), nullable=False),
    sa.Column("side", sa.String(16), nullable=False),  # where it changed: "ghl"
    sa.Column("entity_type", sa.String(32), nullable=False),
    sa.Column("ghl_id", sa.String(64), nullable=False),
    sa.Column("event", sa.String(64), nullable=False),
    sa.Column("detail", sa.Text, nullable=False),  # JSON: the changed fields and values
    sa.Column("reason", sa.Text, nullable=False),  # why it stays in GHL
    sa.Column("changed_at", sa.Float),  # the GHL event time
    sa.Column("recorded_at", sa.Float, nullable=False),
    sa.Index("ix_ghl_changes_location", "location_id", "recorded_at"),
)
