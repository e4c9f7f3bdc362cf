"""Reconciliation: find where GHL and the store drifted apart, and repair what is safe.

`Sweep(engine, client, location_id).run(repair=...)` → `SweepReport` (see `_sweep`).
`ghlsync reconcile` runs it; see `docs/reconcile.md`.
"""

from ghlsync.reconcile._sweep import Drift, Sweep, SweepReport, since_date

__all__ = ["Drift", "Sweep", "SweepReport", "since_date"]
