"""`GET /healthz`: is the store reachable, how deep is the queue, is the worker alive, can
deliveries be accepted at all?"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import sqlalchemy as sa

from ghlsync._clock import Clock
from ghlsync.engine import QueueStatus, queue_status

HEARTBEAT_STALE_SECONDS = 60.0


class WorkerState(Protocol):
    """What an in-process worker tells the health check."""

    @property
    def last_heartbeat(self) -> float | None:
        """Epoch seconds of the worker's last loop turn; None before the first."""
        ...


def health_report(
    engine: sa.Engine,
    clock: Clock,
    worker_state: WorkerState | None,
    receiving_problem: Callable[[], str | None] | None = None,
) -> tuple[bool, dict[str, Any]]:
    """(healthy, report). Unhealthy when the store is unreachable or the worker went quiet;
    degraded (not healthy either) when `receiving_problem` names why no delivery is accepted.
    """
    report: dict[str, Any] = {}
    healthy = _store_report(engine, clock, report)
    if worker_state is not None:
        healthy = _worker_report(worker_state, clock, report) and healthy
    problem = receiving_problem() if healthy and receiving_problem is not None else None
    if problem is not None:
        report["reasons"] = [problem]
    report["status"] = "unhealthy" if not healthy else "degraded" if problem else "ok"
    return healthy and problem is None, report


def _store_report(engine: sa.Engine, clock: Clock, report: dict[str, Any]) -> bool:
    try:
        status = queue_status(engine, clock=clock)
    except sa.exc.SQLAlchemyError as exc:
        report["database"] = {"ok": False, "error": exc.__class__.__name__}
        return False
    totals = status.totals()
    report["dead_letters"] = totals.pop("dead_letters")
    report["queue"] = totals  # by status; `pending` is the backlog
    report["locations"] = _locations(status)
    report["workers"] = {  # every worker process on every machine, from their heartbeats
        "live": status.live_workers(),
        "stale": len(status.workers) - status.live_workers(),
    }
    report["database"] = {"ok": True, "dialect": engine.dialect.name}
    return True


def _locations(status: QueueStatus) -> dict[str, dict[str, Any]]:
    """Per location: depth, in flight, lag (seconds), pause end (epoch seconds or None)."""
    return {
        key: {
            "pending": loc.counts["pending"],
            "leased": loc.counts["leased"],
            "dead_letters": loc.dead_letters,
            "lag_seconds": loc.oldest_pending_age,
            "paused_until": loc.paused_until,
            "daily_remaining": loc.daily_remaining,
        }
        for key, loc in status.locations.items()
    }


def _worker_report(state: WorkerState, clock: Clock, report: dict[str, Any]) -> bool:
    beat = state.last_heartbeat
    age = None if beat is None else max(0.0, clock.now() - beat)
    alive = age is not None and age <= HEARTBEAT_STALE_SECONDS
    report["worker"] = {"alive": alive, "heartbeat_age_seconds": age}
    return alive
