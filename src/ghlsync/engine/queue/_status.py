"""What `ghlsync status` and `/healthz` show: the queue per location (depth, in flight, lag),
dead letters, recent errors, rate budgets and pauses, and the live worker processes.

Everything is read from the database, so any process (a receiver, a worker, an operator's
shell on another machine) sees the state of every worker."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

import sqlalchemy as sa

from ghlsync._clock import SYSTEM_CLOCK, Clock
from ghlsync.engine.queue._heartbeat import WorkerInfo, live_workers
from ghlsync.ghl._seams import Budget, RateLimiter
from ghlsync.store._tables import rate_budget
from ghlsync.store._tables_engine import dead_letters, work_items

__all__ = [
    "LocationStatus",
    "QueueStatus",
    "RecentError",
    "WorkerInfo",
    "add_budgets",
    "queue_status",
]

STATUSES = ("pending", "leased", "done", "dead")
_ERRORS_PER_LOCATION = 3

w = work_items.c


@dataclass(slots=True)
class RecentError:
    """The last error of one entity that is not synced yet (pending retry, or dead)."""

    entity_type: str
    source_id: str
    status: str
    error: str
    at: float


@dataclass(slots=True)
class LocationStatus:
    """One location's queue."""

    location_id: str
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATUSES, 0))
    dead_letters: int = 0  # not yet replayed
    oldest_pending_age: float | None = None  # lag: seconds since the oldest pending item was due
    paused_until: float | None = None  # epoch seconds; set while a 429 pause is on
    daily_remaining: int | None = None  # GHL's daily budget left, as last reported
    last_errors: list[RecentError] = field(default_factory=list)
    budget: dict[str, Any] | None = None  # the rate limiter's view, when one is available


@dataclass(slots=True)
class QueueStatus:
    """The whole queue, per location."""

    at: float
    locations: dict[str, LocationStatus]
    workers: list[WorkerInfo] = field(default_factory=list)

    def live_workers(self) -> int:
        """Worker processes whose heartbeat is fresh."""
        return sum(1 for worker in self.workers if worker.alive)

    def totals(self) -> dict[str, int]:
        """Counts by status over all locations, plus dead letters."""
        totals = dict.fromkeys(STATUSES, 0)
        for loc in self.locations.values():
            for status, n in loc.counts.items():
                totals[status] += n
        totals["dead_letters"] = sum(loc.dead_letters for loc in self.locations.values())
        return totals

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (`ghlsync status --json`)."""
        return {
            "at": self.at,
            "totals": self.totals(),
            "locations": [asdict(loc) for loc in self.locations.values()],
            "workers": [worker.to_dict() for worker in self.workers],
            "live_workers": self.live_workers(),
        }


def queue_status(engine: sa.Engine, *, clock: Clock = SYSTEM_CLOCK) -> QueueStatus:
    """Read the queue's state from the store."""
    now = clock.now()
    locations: dict[str, LocationStatus] = defaultdict(lambda: LocationStatus(""))
    with engine.connect() as conn:
        _counts(conn, locations, now)
        _dead(conn, locations)
        _errors(conn, locations)
        _pauses(conn, locations, now)
        running = live_workers(conn, now)
    for key, loc in locations.items():
        loc.location_id = key
    return QueueStatus(now, dict(sorted(locations.items())), running)


def _pauses(conn: sa.Connection, into: dict[str, LocationStatus], now: float) -> None:
    """Pauses and daily budgets of the locations with work, from the shared `rate_budget`."""
    if not into:
        return
    r = rate_budget.c
    query = sa.select(r.key, r.paused_until_ms, r.daily_remaining).where(r.key.in_(list(into)))
    for key, paused_ms, daily in conn.execute(query):
        loc = into[key]
        if paused_ms and paused_ms / 1000 > now:
            loc.paused_until = paused_ms / 1000
        loc.daily_remaining = None if daily is None else int(daily)


def _counts(conn: sa.Connection, into: dict[str, LocationStatus], now: float) -> None:
    pending_due = sa.func.min(sa.case((w.status == "pending", w.available_at)))
    query = sa.select(w.location_id, w.status, sa.func.count(), pending_due).group_by(
        w.location_id, w.status
    )
    for location, status, n, oldest in conn.execute(query):
        loc = into[location]
        loc.counts[status] = int(n)
        if oldest is not None:
            loc.oldest_pending_age = max(0.0, now - float(oldest))


def _dead(conn: sa.Connection, into: dict[str, LocationStatus]) -> None:
    d = dead_letters.c
    query = (
        sa.select(d.location_id, sa.func.count())
        .where(d.replayed_at.is_(None))
        .group_by(d.location_id)
    )
    for location, n in conn.execute(query):
        into[location].dead_letters = int(n)


def _errors(conn: sa.Connection, into: dict[str, LocationStatus]) -> None:
    query = (
        sa.select(w.location_id, w.entity_type, w.source_id, w.status, w.last_error, w.updated_at)
        .where(w.last_error.is_not(None), w.status.in_(("pending", "leased", "dead")))
        .order_by(w.updated_at.desc())
        .limit(500)
    )
    for row in conn.execute(query):
        errors = into[row.location_id].last_errors
        if len(errors) < _ERRORS_PER_LOCATION:
            errors.append(
                RecentError(
                    row.entity_type, row.source_id, row.status, row.last_error, row.updated_at
                )
            )


async def add_budgets(status: QueueStatus, limiter: RateLimiter) -> None:
    """Attach the limiter's budget to every location in `status`."""
    for location, loc in status.locations.items():
        budget: Budget = await limiter.budget(location)
        loc.budget = asdict(budget)
