"""Recipe runs and timers as rows of the work queue (`work_items`, entity type `recipe`).

A run is queued once per (recipe, trigger instance): its row's source id is
`<recipe>|<contact hash>|<instance hash>` and the queue's UNIQUE (location, type, source id)
turns a second insert (a retried item, a replayed dead letter) into nothing. A run with
`after: {wait}` is the same row with `available_at` in the future: a durable timer that the
ordinary claim takes once it is due, on any worker, after any restart. `unless` cancels the
contact's waiting rows of that recipe (status `done`, an audit line says why).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from ghlsync.engine.queue._codec import dump_events, dumps
from ghlsync.engine.queue._inbox import ACCEPTED_FLAG
from ghlsync.engine.queue._notify import notify_work
from ghlsync.store._engine import begin_immediate
from ghlsync.store._tables_engine import audit_log, work_items

RECIPE_WORK = "recipe"
"""The entity type of a recipe run's work row."""

w = work_items.c


def _digest(text: str, size: int) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:size]


def run_key(recipe: str, contact: str, instance: str) -> str:
    """The work row's source id of one run (at most 40 + 2 + 16 + 24 characters)."""
    return f"{recipe}|{_digest(contact, 16)}|{_digest(instance, 24)}"


def step_key(recipe: str, index: int, instance: str) -> str:
    """The idempotency key of one step of one run (recipe + step + trigger instance)."""
    return f"{recipe}#{index}|{_digest(instance, 40)}"


@dataclass(frozen=True, slots=True)
class PlannedRun:
    """A run to queue: which recipe, for which trigger instance, due when, with what."""

    recipe: str
    trigger: str
    instance: str
    contact: str
    due: float
    payload: Mapping[str, Any]


def queue_runs(engine: sa.Engine, location_id: str, runs: list[PlannedRun], now: float) -> int:
    """Insert the runs not queued before (one transaction); returns how many are new."""
    if not runs:
        return 0
    with begin_immediate(engine) as conn:
        insert: Any = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        added = 0
        for run in runs:
            stmt = insert(work_items).values(_row(location_id, run, now))
            stmt = stmt.on_conflict_do_nothing(
                index_elements=["location_id", "entity_type", "source_id"]
            )
            added += conn.execute(stmt).rowcount or 0
        if added:
            conn.info[ACCEPTED_FLAG] = True  # a worker of this process claims them at once
            notify_work(conn, location_id)
    return added


def _row(location_id: str, run: PlannedRun, now: float) -> dict[str, Any]:
    event = run.trigger[:64]
    return {
        "location_id": location_id,
        "entity_type": RECIPE_WORK,
        "source_id": run_key(run.recipe, run.contact, run.instance),
        "status": "pending",
        "generation": 1,
        "available_at": run.due,
        "attempts": 0,
        "created_at": now,
        "updated_at": now,
        "event": event,
        "events": dump_events(((event, 0),)),
        "payload": dumps(dict(run.payload)),
        "stamps": "{}",
        "source_updated_at": None,
    }


def cancel_waiting(
    engine: sa.Engine,
    location_id: str,
    recipes: list[str],
    contact: str,
    why: str,
    now: float,
    *,
    before: float,
) -> int:
    """Cancel the contact's waiting runs of `recipes` queued up to `before` (when the
    cancelling event arrived: an old event synced again, e.g. a sticky completion, never
    cancels a run started after it); returns how many."""
    if not recipes:
        return 0
    cancelled = 0
    with begin_immediate(engine) as conn:
        for recipe in recipes:
            prefix = f"{recipe}|{_digest(contact, 16)}|"
            rows = conn.execute(
                sa.update(work_items)
                .where(
                    w.location_id == location_id,
                    w.entity_type == RECIPE_WORK,
                    w.status == "pending",
                    w.source_id.startswith(prefix, autoescape=True),
                    w.created_at <= before,
                )
                .values(status="done", last_error=why, updated_at=now)
                .returning(w.source_id)
            ).all()
            for row in rows:
                conn.execute(sa.insert(audit_log).values(_cancel_note(location_id, row, why, now)))
            cancelled += len(rows)
    return cancelled


def _cancel_note(location_id: str, row: Any, why: str, now: float) -> dict[str, Any]:
    return {
        "at": now,
        "location_id": location_id,
        "entity_type": RECIPE_WORK,
        "source_id": row.source_id,
        "action": "cancelled",
        "calls": 0,
        "detail": why,
    }


@dataclass(frozen=True, slots=True)
class TimerStatus:
    """Waiting recipe runs of one location: how many, and when the next one is due."""

    location_id: str
    waiting: int
    next_due: float


@dataclass(frozen=True, slots=True)
class TimerCounts:
    """One location's pending recipe runs: waiting for a future time (`waiting`, the next due
    at `next_due`) and due already but not yet taken by a worker (`overdue`, the longest
    overdue since `oldest_due`)."""

    location_id: str
    waiting: int
    next_due: float | None
    overdue: int
    oldest_due: float | None


def timer_counts(engine: sa.Engine, now: float) -> list[TimerCounts]:
    """Per location with pending recipe runs, in one grouped query (`/metrics`, `status`)."""
    later = w.available_at > now
    due = sa.not_(later)
    query = (
        sa.select(
            w.location_id,
            sa.func.count(sa.case((later, 1))),
            sa.func.min(sa.case((later, w.available_at))),
            sa.func.count(sa.case((due, 1))),
            sa.func.min(sa.case((due, w.available_at))),
        )
        .where(w.status == "pending", w.entity_type == RECIPE_WORK)
        .group_by(w.location_id)
        .order_by(w.location_id)
    )
    with engine.connect() as conn:
        return [
            TimerCounts(loc, int(waiting), _seconds(next_due), int(overdue), _seconds(oldest))
            for loc, waiting, next_due, overdue, oldest in conn.execute(query)
        ]


def _seconds(value: Any) -> float | None:
    return None if value is None else float(value)


def timer_status(engine: sa.Engine, now: float) -> list[TimerStatus]:
    """Per location: recipe runs waiting for a future time (`ghlsync status`)."""
    return [
        TimerStatus(c.location_id, c.waiting, c.next_due)
        for c in timer_counts(engine, now)
        if c.next_due is not None
    ]
