"""Locations (GHL sub-accounts) ghlsync syncs, and the DripJobs connections that feed them.

- `locations`: one row per sub-account, `active` or `uninstalled` (an uninstalled location
  keeps its id map, sync state and queue: a reinstall picks up where it stopped). A location
  may carry its own calendar and a mapping override (YAML merged over the base config).
- `dripjobs_connections`: one row per inbound webhook URL. `connection_id` is the unguessable
  slug in `/hooks/dripjobs/<connection_id>/<event>`; `secret` is the bearer secret, encrypted
  with `ghlsync.ghl.TokenCipher` (`key_id` names the key that sealed it). A revoked connection
  keeps its row, so a late delivery is told why it is refused.
- `environment` (both): the environment of `ghlsync.yaml` that wrote the row (migration
  0012); NULL for rows from before environments, served by any environment.
- `locations.api_version`: the GHL API family the location is called with, "v2" or "v3"
  (migration 0016, docs/api-versions.md); NULL: the config's `ghl.api_version`.
"""

from __future__ import annotations

import sqlalchemy as sa

from ghlsync.store._tables import metadata

locations = sa.Table(
    "locations",
    metadata,
    sa.Column("location_id", sa.String(64), primary_key=True),
    sa.Column("company_id", sa.String(64)),
    sa.Column("name", sa.Text),
    sa.Column("status", sa.String(16), nullable=False, server_default="active"),
    sa.Column("calendar_id", sa.String(64)),
    sa.Column("mapping_override", sa.Text),  # YAML, validated when saved
    sa.Column("installed_at", sa.Float, nullable=False),
    sa.Column("uninstalled_at", sa.Float),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("environment", sa.String(32)),  # 0012: the environment it belongs to
    sa.Column("api_version", sa.String(8)),  # 0016: "v2" | "v3"; NULL: the config's
    sa.Index("ix_locations_company", "company_id"),
)

dripjobs_connections = sa.Table(
    "dripjobs_connections",
    metadata,
    sa.Column("connection_id", sa.String(64), primary_key=True),
    sa.Column("location_id", sa.String(64), nullable=False),
    sa.Column("secret", sa.LargeBinary, nullable=False),  # encrypted
    sa.Column("key_id", sa.String(32)),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("revoked_at", sa.Float),
    sa.Column("environment", sa.String(32)),  # 0012: the environment it belongs to
    sa.Index("ix_dripjobs_connections_location", "location_id"),
)
