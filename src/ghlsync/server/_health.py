"""`GET /healthz`: is the store reachable, how deep is the queue, is the worker alive?"""

from __future__ import annotations

from typing import Any, Protocol

import sqlalchemy as sa

from ghlsync._clock import Clock
from ghlsync.store._tables_engine import dead_letters, work_items

HEARTBEAT_STALE_SECONDS = 60.0
_STATUSES = ("pending", "leased", "done", "dead")


class WorkerState(Protocol):
    """What an in-process worker tells the health check."""

    @property
    def last_heartbeat(self) -> float | None:
        """Epoch seconds of the worker's last loop turn; None before the first."""
        ...


def health_report(
    engine: sa.Engine, clock: Clock, worker_state: WorkerState | None
) -> tuple[bool, dict[str, Any]]:
    """(healthy, report). Unhealthy when the store is unreachable or the worker went quiet."""
    report: dict[str, Any] = {}
    healthy = _store_report(engine, report)
    if worker_state is not None:
        healthy = _worker_report(worker_state, clock, report) and healthy
    report["status"] = "ok" if healthy else "unhealthy"
    return healthy, report


def _store_report(engine: sa.Engine, report: dict[str, Any]) -> bool:
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
            report.update(queue_stats(conn))
    except sa.exc.SQLAlchemyError as exc:
        report["database"] = {"ok": False, "error": exc.__class__.__name__}
        return False
    report["database"] = {"ok": True, "dialect": engine.dialect.name}
    return True


def _worker_report(state: WorkerState, clock: Clock, report: dict[str, Any]) -> bool:
    beat = state.last_heartbeat
    age = None if beat is None else max(0.0, clock.now() - beat)
    alive = age is not None and age <= HEARTBEAT_STALE_SECONDS
    report["worker"] = {"alive": alive, "heartbeat_age_seconds": age}
    return alive


def queue_stats(conn: sa.Connection) -> dict[str, Any]:
    """Work rows by status (pending = the queue depth) and dead letters not yet replayed."""
    w = work_items.c
    counts = dict.fromkeys(_STATUSES, 0)
    for status, count in conn.execute(sa.select(w.status, sa.func.count()).group_by(w.status)):
        counts[status] = int(count)
    dead = conn.execute(
        sa.select(sa.func.count())
        .select_from(dead_letters)
        .where(dead_letters.c.replayed_at.is_(None))
    ).scalar_one()
    return {"queue": counts, "dead_letters": int(dead)}
