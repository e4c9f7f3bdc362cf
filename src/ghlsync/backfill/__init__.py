"""CSV backfill: bring the existing DripJobs customers in through the same queue and flows.

`Backfill(engine, mapper, client).run(BackfillPlan(path, kind, location_id, resume=...))`
streams a DripJobs export into the sync queue (paced by a window, checkpointed per batch,
bad and ambiguous rows parked in the dead-letter queue with their row numbers), with
first-time matching against the location's existing GHL contacts; `dry_run` reports what it
would do and sends no writes. See `docs/backfill.md`.
"""

from ghlsync.backfill._dryrun import DryRunReport, dry_run
from ghlsync.backfill._match import Match, match_contact
from ghlsync.backfill._run import (
    CONNECTION_ID,
    Backfill,
    BackfillError,
    BackfillPlan,
    Progress,
    Summary,
)

__all__ = [
    "CONNECTION_ID",
    "Backfill",
    "BackfillError",
    "BackfillPlan",
    "DryRunReport",
    "Match",
    "Progress",
    "Summary",
    "dry_run",
    "match_contact",
]
