"""Sync tables: which GHL object each DripJobs record became, and what we last wrote there.

- `id_map`: DripJobs id ↔ GHL id per location and entity type. A row is written `pending`
  (with the body we are about to send) and committed *before* any create, so a crash between
  "GHL created it" and "we recorded the id" is resolved by lookup, never by a second create.
- `sync_state`: per entity and side, the hash of what was last written, its source timestamp
  (ordering guard) and a JSON snapshot (last-synced body, tags) for computing deltas.
- `ghl_custom_fields`: cache of the location's custom-field definitions (key → id).
- `ghl_location_settings`: cache of the location settings the flows act on (whether GHL
  allows duplicate contacts there; NULL = could not be read), with when it was read.
- `ghl_pipelines` (migration 0015): the location's opportunity pipelines and their stages
  (`GET /opportunities/pipelines`) as JSON, with when they were read, shared by every process
  and kept across restarts (`engine.flows.to_ghl._pipelines`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from ghlsync.store._tables import metadata

id_map = sa.Table(
    "id_map",
    metadata,
    sa.Column("location_id", sa.String(64), primary_key=True),
    sa.Column("entity_type", sa.String(32), primary_key=True),
    sa.Column("source_id", sa.String(128), primary_key=True),
    sa.Column("ghl_id", sa.String(64)),  # NULL while pending
    sa.Column("state", sa.String(16), nullable=False),  # "pending" | "confirmed"
    sa.Column("pending_body", sa.Text),  # JSON of the create we sent, to find it again
    sa.Column("pending_since", sa.Float),
    sa.Column("updated_at", sa.Float, nullable=False),
    # Not unique: two DripJobs customers that are one person (same email or phone) are
    # deliberately merged by GHL's upsert into one contact, so one ghl_id may have two rows.
    # Each secondary index leads with the column only it has (migration 0018): a lookup by
    # the whole key can use the primary key alone (planned without statistics, PostgreSQL
    # took an index led by (location_id, entity_type) and read the location's every row).
    sa.Index("ix_id_map_ghl", "ghl_id", "location_id", "entity_type"),
    # Two-way echo checks look up the creates still in flight (migration 0007).
    sa.Index("ix_id_map_state", "state", "location_id", "entity_type"),
)

sync_state = sa.Table(
    "sync_state",
    metadata,
    sa.Column("location_id", sa.String(64), primary_key=True),
    sa.Column("entity_type", sa.String(32), primary_key=True),
    sa.Column("source_id", sa.String(128), primary_key=True),
    sa.Column("side", sa.String(16), primary_key=True),  # "ghl" | "dripjobs"
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("source_updated_at", sa.Float),
    sa.Column("snapshot", sa.Text, nullable=False, server_default="{}"),
    sa.Column("synced_at", sa.Float, nullable=False),
)


# Each table's columns in the order of its upserts, with their types and the names of the
# bound parameters the ledger gives them (`_idmap.put_params`, `_syncstate.put_params`): the
# shape of the rows that the PostgreSQL batches (`unnest` of one array per column) write.
ID_MAP_ROW = (
    ("location_id", sa.String, "k_location"),
    ("entity_type", sa.String, "k_type"),
    ("source_id", sa.String, "k_source"),
    ("ghl_id", sa.String, "v_ghl_id"),
    ("state", sa.String, "v_state"),
    ("pending_body", sa.Text, "v_pending_body"),
    ("pending_since", sa.Float, "v_pending_since"),
    ("updated_at", sa.Float, "v_updated_at"),
)
SYNC_STATE_ROW = (
    ("location_id", sa.String, "k_location"),
    ("entity_type", sa.String, "k_type"),
    ("source_id", sa.String, "k_source"),
    ("side", sa.String, "k_side"),
    ("content_hash", sa.String, "v_hash"),
    ("source_updated_at", sa.Float, "v_updated_at"),
    ("snapshot", sa.Text, "v_snapshot"),
    ("synced_at", sa.Float, "v_synced_at"),
)


def map_key(params: Mapping[str, Any]) -> tuple[str, str, str]:
    """The ID-map row a set of `ID_MAP_ROW` (or `SYNC_STATE_ROW`) parameters is about."""
    return params["k_location"], params["k_type"], params["k_source"]


def state_key(params: Mapping[str, Any]) -> tuple[str, str, str, str]:
    """The sync-state row a set of `SYNC_STATE_ROW` parameters writes (with its side)."""
    return params["k_location"], params["k_type"], params["k_source"], params["k_side"]


def upsert_id_map(insert: Any) -> Any:
    """`insert` (PostgreSQL's `INSERT INTO id_map` of `ID_MAP_ROW`'s columns) as an upsert: a
    row it finds takes every value given (as `_idmap`'s own upsert does)."""
    names = [col for col, _, _ in ID_MAP_ROW[3:]]
    return insert.on_conflict_do_update(
        index_elements=list(id_map.primary_key.columns),
        set_={name: insert.excluded[name] for name in names},
    )


def upsert_sync_state(insert: Any) -> Any:
    """`insert` (a dialect's `INSERT INTO sync_state`) as an upsert with the table's one rule
    for a row it finds: the new hash, snapshot and time replace the old, and a missing source
    timestamp keeps the recorded one (versions only move forward). Every writer of the table
    (the ledger, its PostgreSQL batches, the worker's settle) shares it."""
    kept = sa.func.coalesce(insert.excluded.source_updated_at, sync_state.c.source_updated_at)
    return insert.on_conflict_do_update(
        index_elements=list(sync_state.primary_key.columns),
        set_={
            "content_hash": insert.excluded.content_hash,
            "snapshot": insert.excluded.snapshot,
            "synced_at": insert.excluded.synced_at,
            "source_updated_at": kept,
        },
    )


ghl_custom_fields = sa.Table(
    "ghl_custom_fields",
    metadata,
    sa.Column("location_id", sa.String(64), primary_key=True),
    sa.Column("field_key", sa.String(255), primary_key=True),
    sa.Column("field_id", sa.String(64), nullable=False),
    sa.Column("data_type", sa.String(32)),
    sa.Column("fetched_at", sa.Float, nullable=False),
)

ghl_location_settings = sa.Table(
    "ghl_location_settings",
    metadata,
    sa.Column("location_id", sa.String(64), primary_key=True),
    sa.Column("allow_duplicate_contact", sa.Boolean),  # NULL: GHL would not tell us
    sa.Column("fetched_at", sa.Float, nullable=False),
)

ghl_pipelines = sa.Table(
    "ghl_pipelines",
    metadata,
    sa.Column("location_id", sa.String(64), primary_key=True),
    sa.Column("pipelines", sa.Text, nullable=False),  # [{"id", "name", "stages": [[name, id]]}]
    sa.Column("fetched_at", sa.Float, nullable=False),
)
