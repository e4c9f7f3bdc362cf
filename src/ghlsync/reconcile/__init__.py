"""Reconciliation: find where GHL and the store drifted apart, and repair what is safe.

`Sweep(engine, client, location_id).run(repair=...)` → `SweepReport` (see `_sweep`).
`ghlsync reconcile` runs it; `SweepSchedule` runs it periodically in `ghlsync serve`,
resumable from its cursor (`_progress`); see `docs/reconcile.md`.
"""

from ghlsync.reconcile._schedule import SweepSchedule, sweep_locations
from ghlsync.reconcile._sweep import Drift, Sweep, SweepReport, since_date

__all__ = ["Drift", "Sweep", "SweepReport", "SweepSchedule", "since_date", "sweep_locations"]
