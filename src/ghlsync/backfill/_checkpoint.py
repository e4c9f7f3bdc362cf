"""The checkpoint of one CSV file: the next row to queue and the running totals.

Rows are queued and `next_row` moved in the same transaction (`advance`), so a killed run
resumes at exactly the first row that is not in the queue: nothing is queued twice and
nothing is skipped.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field

import sqlalchemy as sa

from ghlsync.store._tables_backfill import backfill_files

__all__ = ["Checkpoint", "advance", "finish", "load", "run_key", "start"]

c = backfill_files.c


@dataclass(slots=True)
class Checkpoint:
    """Where an import of one file (kind, location) stands."""

    run_key: str
    file_name: str
    kind: str
    location_id: str
    rows_total: int
    next_row: int
    counts: dict[str, int] = field(default_factory=dict)
    started_at: float = 0.0
    finished_at: float | None = None

    @property
    def finished(self) -> bool:
        """True when every row was queued and settled."""
        return self.finished_at is not None


def run_key(fingerprint: str, kind: str, location_id: str) -> str:
    """One import: the file's content, read as `kind`, into one location."""
    return hashlib.sha256(f"{fingerprint}\n{kind}\n{location_id}".encode()).hexdigest()


def load(conn: sa.Connection, key: str) -> Checkpoint | None:
    """The checkpoint of `key`, if this file was imported (or started) before."""
    row = conn.execute(sa.select(backfill_files).where(c.run_key == key)).first()
    if row is None:
        return None
    return Checkpoint(
        run_key=row.run_key,
        file_name=row.file_name,
        kind=row.kind,
        location_id=row.location_id,
        rows_total=int(row.rows_total),
        next_row=int(row.next_row),
        counts={k: int(v) for k, v in json.loads(row.counts or "{}").items()},
        started_at=float(row.started_at),
        finished_at=row.finished_at,
    )


def start(conn: sa.Connection, point: Checkpoint, fingerprint: str, now: float) -> None:
    """Record a run from the top (a first run, or a re-run of a finished file)."""
    conn.execute(sa.delete(backfill_files).where(c.run_key == point.run_key))
    conn.execute(
        sa.insert(backfill_files).values(
            run_key=point.run_key,
            fingerprint=fingerprint,
            file_name=point.file_name[:255],
            kind=point.kind,
            location_id=point.location_id,
            rows_total=point.rows_total,
            next_row=point.next_row,
            counts=json.dumps(point.counts, sort_keys=True),
            started_at=now,
            updated_at=now,
            finished_at=None,
        )
    )


def advance(
    conn: sa.Connection, key: str, next_row: int, counts: Mapping[str, int], now: float
) -> None:
    """Move the checkpoint (in the transaction that queued the rows before `next_row`)."""
    conn.execute(
        sa.update(backfill_files)
        .where(c.run_key == key)
        .values(next_row=next_row, counts=json.dumps(dict(counts), sort_keys=True), updated_at=now)
    )


def finish(conn: sa.Connection, key: str, counts: Mapping[str, int], now: float) -> None:
    """Every row queued and settled: the file is imported."""
    conn.execute(
        sa.update(backfill_files)
        .where(c.run_key == key)
        .values(counts=json.dumps(dict(counts), sort_keys=True), updated_at=now, finished_at=now)
    )
