"""The `workers` table: every running worker process, as the database sees it.

A worker upserts its row every `HEARTBEAT_SECONDS` (and when it starts draining) and deletes
it when it exits cleanly. A row older than `STALE_SECONDS` belongs to a worker that died
(SIGKILL, lost machine); its leases expire on their own and `live_workers` stops counting it.
"""

from __future__ import annotations

import os
import socket
from dataclasses import asdict, dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from ghlsync.store._tables_engine import workers

__all__ = [
    "HEARTBEAT_SECONDS",
    "STALE_SECONDS",
    "WorkerInfo",
    "beat",
    "forget",
    "live_workers",
    "prune",
]

HEARTBEAT_SECONDS = 10.0
STALE_SECONDS = 3 * HEARTBEAT_SECONDS
_PRUNE_AFTER = 3600.0  # dead workers' rows stay visible (as stale) for an hour

c = workers.c


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """One worker row, with how old its heartbeat is."""

    worker_id: str
    host: str
    pid: int
    state: str
    in_flight: int
    processed: int
    started_at: float
    heartbeat_age: float
    alive: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)


def beat(
    engine: sa.Engine,
    worker_id: str,
    *,
    now: float,
    started_at: float,
    state: str,
    in_flight: int,
    processed: int,
) -> None:
    """Insert or refresh this worker's row."""
    insert: Any = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
    values = {
        "worker_id": worker_id,
        "host": socket.gethostname()[:255],
        "pid": os.getpid(),
        "started_at": started_at,
        "heartbeat_at": now,
        "state": state,
        "in_flight": in_flight,
        "processed": processed,
    }
    changing = ("heartbeat_at", "state", "in_flight", "processed")
    statement = insert(workers).values(values)
    statement = statement.on_conflict_do_update(
        index_elements=["worker_id"], set_={k: statement.excluded[k] for k in changing}
    )
    with engine.begin() as conn:
        conn.execute(statement)


def forget(engine: sa.Engine, worker_id: str) -> None:
    """Remove this worker's row (a clean exit)."""
    with engine.begin() as conn:
        conn.execute(sa.delete(workers).where(c.worker_id == worker_id))


def prune(engine: sa.Engine, *, now: float) -> None:
    """Drop rows of workers that died long ago."""
    with engine.begin() as conn:
        conn.execute(sa.delete(workers).where(c.heartbeat_at < now - _PRUNE_AFTER))


def live_workers(conn: sa.Connection, now: float) -> list[WorkerInfo]:
    """Every worker row, alive (fresh heartbeat) or not, newest heartbeat first."""
    rows = conn.execute(sa.select(workers).order_by(c.heartbeat_at.desc(), c.worker_id)).all()
    return [
        WorkerInfo(
            worker_id=row.worker_id,
            host=row.host,
            pid=int(row.pid),
            state=row.state,
            in_flight=int(row.in_flight),
            processed=int(row.processed),
            started_at=float(row.started_at),
            heartbeat_age=max(0.0, now - float(row.heartbeat_at)),
            alive=now - float(row.heartbeat_at) <= STALE_SECONDS,
        )
        for row in rows
    ]
