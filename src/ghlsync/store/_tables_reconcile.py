"""Reconcile tables (migration 0011): where each location's periodic sweep stands.

`reconcile_sweeps` holds one row per location. While a sweep walks, `cursor` is the GHL
search cursor (`searchAfter`, JSON) after the last page it finished and `finished_at` is NULL,
so a restarted `serve` walks on from there instead of from the start. When it ends, `cursor`
goes back to NULL and `findings` holds that sweep's drift counts by kind (JSON), which
`ghlsync status` shows. `owner` names the process sweeping (several `serve` processes on one
store sweep each location once); `updated_at`, moved at every page, is its heartbeat.

`reconcile_seen` (migration 0014) holds the mapped GHL contacts the sweep under way has seen,
written with each page's cursor, so a sweep resumed after a restart still knows which mapped
contacts were walked before the cut and can tell the deleted ones apart. Emptied when a sweep
starts and when it ends.
"""

from __future__ import annotations

import sqlalchemy as sa

from ghlsync.store._tables import metadata

reconcile_sweeps = sa.Table(
    "reconcile_sweeps",
    metadata,
    sa.Column("location_id", sa.String(64), primary_key=True),
    sa.Column("cursor", sa.Text),  # JSON searchAfter; NULL: start from the beginning
    sa.Column("contacts_seen", sa.Integer, nullable=False, server_default="0"),
    sa.Column("started_at", sa.Float, nullable=False),  # of the current or last sweep
    sa.Column("finished_at", sa.Float),  # NULL while a sweep is under way
    sa.Column("findings", sa.Text, nullable=False, server_default="{}"),  # last finished sweep
    sa.Column("complete", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("owner", sa.String(128)),  # which process sweeps (host:pid:random); NULL: none
    sa.Column("updated_at", sa.Float, nullable=False),
)

reconcile_seen = sa.Table(
    "reconcile_seen",
    metadata,
    sa.Column("location_id", sa.String(64), primary_key=True),
    sa.Column("ghl_id", sa.String(64), primary_key=True),
)
