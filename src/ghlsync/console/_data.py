"""What the console pages show, read from the store (never from GHL: no rate budget spent).

Each function returns plain dicts and lists for the templates; the SQL lives here so the
routes stay thin.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from ghlsync.console._words import plain_error
from ghlsync.engine.queue._codec import loads
from ghlsync.engine.queue._status import LocationStatus, queue_status
from ghlsync.mapping import AppConfig
from ghlsync.store._tables import rate_budget
from ghlsync.store._tables_engine import audit_log, dead_letters, inbox

__all__ = [
    "HOURS",
    "activity",
    "dead_letter_rows",
    "known_locations",
    "matching_dead_ids",
    "overview",
]

HOURS = 24
_LAG_WARN_SECONDS = 300


def known_locations(engine: sa.Engine, config: AppConfig) -> dict[str, str | None]:
    """Every location id the console can show, with its name: stored, configured, or queued."""
    from ghlsync.engine.locations._rows import list_locations

    found: dict[str, str | None] = {row.location_id: row.name for row in list_locations(engine)}
    if config.ghl.location_id:
        found.setdefault(config.ghl.location_id, None)
    with engine.connect() as conn:
        for (location,) in conn.execute(sa.select(inbox.c.location_id).distinct()):
            found.setdefault(location, None)
    return dict(sorted(found.items()))


def overview(engine: sa.Engine, config: AppConfig, now: float) -> list[dict[str, Any]]:
    """One card per location: health, queue, lag, budget, 24 h series, last errors."""
    status = queue_status(engine)
    names = known_locations(engine, config)
    for location in status.locations:
        names.setdefault(location, None)
    with engine.connect() as conn:
        budgets = {row.key: row for row in conn.execute(sa.select(rate_budget))}
        series = _series(conn, now)
    cards = []
    for location, name in sorted(names.items()):
        loc = status.locations.get(location) or LocationStatus(location)
        cards.append(_card(location, name, loc, budgets.get(location), series, now))
    return cards


def _card(
    location: str,
    name: str | None,
    loc: LocationStatus,
    budget: Any,
    series: dict[str, dict[str, list[int]]],
    now: float,
) -> dict[str, Any]:
    own = series.get(location, _empty_series())
    return {
        "location_id": location,
        "name": name,
        "health": _health(loc, now),
        "pending": loc.counts["pending"],
        "in_flight": loc.counts["leased"],
        "done": loc.counts["done"],
        "dead_letters": loc.dead_letters,
        "lag": loc.oldest_pending_age,
        "budget": _budget(budget),
        "series": own,
        "totals": {key: sum(values) for key, values in own.items()},
        "errors": [
            {
                "what": f"{e.entity_type} {e.source_id}",
                "words": plain_error(e.error),
                "raw": e.error,
                "at": e.at,
            }
            for e in loc.last_errors
        ],
    }


def _health(loc: LocationStatus, now: float) -> dict[str, str]:
    """A word and a tone (ok / warn / bad) for a card's badge."""
    if loc.paused_until is not None and loc.paused_until > now:
        return {"word": "Paused by GHL's rate limit", "tone": "warn"}
    if loc.dead_letters:
        return {"word": "Needs attention: dead letters", "tone": "bad"}
    if loc.oldest_pending_age is not None and loc.oldest_pending_age > _LAG_WARN_SECONDS:
        return {"word": "Behind: events are waiting", "tone": "warn"}
    return {"word": "Healthy", "tone": "ok"}


def _budget(row: Any) -> dict[str, Any] | None:
    """Share of GHL's daily request budget used, as GHL last reported it."""
    if row is None or row.daily_remaining is None:
        return None
    limit = int(row.daily_limit) or 1
    used = max(0, limit - int(row.daily_remaining))
    return {"used": used, "limit": limit, "percent": round(100 * used / limit, 1)}


def _empty_series() -> dict[str, list[int]]:
    return {"in": [0] * HOURS, "out": [0] * HOURS, "dead": [0] * HOURS}


def _series(conn: sa.Connection, now: float) -> dict[str, dict[str, list[int]]]:
    """Per location and hour of the last 24 h: events in, GHL writes out, dead letters."""
    start = now - HOURS * 3600
    found: dict[str, dict[str, list[int]]] = {}
    sources = (
        ("in", inbox.c.received_at, inbox.c.location_id),
        ("out", audit_log.c.at, audit_log.c.location_id),
        ("dead", dead_letters.c.created_at, dead_letters.c.location_id),
    )
    for key, at, location in sources:
        hours = (at - start) / 3600
        # The hour's index: PostgreSQL's integer cast rounds, SQLite's truncates.
        bucket = (
            sa.cast(sa.func.floor(hours), sa.Integer)
            if conn.dialect.name == "postgresql"
            else sa.cast(hours, sa.Integer)
        )
        query = (
            sa.select(location, bucket, sa.func.count())
            .where(at >= start, at <= now)
            .group_by(location, bucket)
        )
        for loc, hour, count in conn.execute(query):
            values = found.setdefault(loc, _empty_series())[key]
            values[min(HOURS - 1, max(0, int(hour)))] += int(count)
    return found


def dead_letter_rows(
    engine: sa.Engine,
    *,
    location: str | None,
    entity: str | None,
    text: str | None,
    replayed: bool,
    limit: int = 200,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Dead letters matching the filters, newest first, with the reason in plain words;
    `limit` of them after the first `offset`."""
    query = _dead_query(location=location, entity=entity, text=text, replayed=replayed)
    order = (dead_letters.c.created_at.desc(), dead_letters.c.id.desc())  # stable pages
    with engine.connect() as conn:
        rows = conn.execute(query.order_by(*order).limit(limit).offset(offset)).all()
    return [
        {
            "id": int(row.id),
            "location_id": row.location_id,
            "entity_type": row.entity_type,
            "source_id": row.source_id,
            "event": row.event,
            "reason": row.reason,
            "words": plain_error(row.reason, row.error_class),
            "error_class": row.error_class,
            "attempts": int(row.attempts),
            "created_at": float(row.created_at),
            "replayed_at": row.replayed_at,
            "payload": json.dumps(loads(row.payload), indent=2, ensure_ascii=False),
        }
        for row in rows
    ]


def matching_dead_ids(
    engine: sa.Engine, *, location: str | None, entity: str | None, text: str | None
) -> list[int]:
    """Ids of the unreplayed dead letters the filters match (for "replay all matching")."""
    query = _dead_query(location=location, entity=entity, text=text, replayed=False)
    with engine.connect() as conn:
        return [int(row.id) for row in conn.execute(query.order_by(dead_letters.c.id))]


def _dead_query(
    *, location: str | None, entity: str | None, text: str | None, replayed: bool
) -> sa.Select[Any]:
    d = dead_letters.c
    query = sa.select(dead_letters)
    if location:
        query = query.where(d.location_id == location)
    if entity:
        query = query.where(d.entity_type == entity)
    if text:
        like = f"%{text.lower()}%"
        query = query.where(
            sa.or_(
                sa.func.lower(d.reason).like(like),
                sa.func.lower(d.source_id).like(like),
                sa.func.lower(d.event).like(like),
            )
        )
    if not replayed:
        query = query.where(d.replayed_at.is_(None))
    return query


# Activity: what happened, both ways. GHL writes come from the audit log; DripJobs write-backs
# from the outbox (two-way sync), when that table exists in this installation.
_FAILED_ACTIONS = ("failed", "dead", "error", "skipped")


def activity(
    engine: sa.Engine,
    *,
    location: str | None,
    direction: str | None,
    outcome: str | None,
    limit: int = 200,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Audit lines, newest first: `direction` is `to_ghl` / `to_dripjobs`, `outcome` is
    `ok` / `failed`; `limit` of them after the first `offset` (of both directions merged)."""
    rows: list[dict[str, Any]] = []
    if direction in (None, "", "to_ghl"):
        rows += _to_ghl(engine, location, outcome, offset + limit)
    if direction in (None, "", "to_dripjobs"):
        rows += _to_dripjobs(engine, location, outcome, offset + limit)
    rows.sort(key=lambda row: row["at"], reverse=True)
    return rows[offset : offset + limit]


def _to_ghl(
    engine: sa.Engine, location: str | None, outcome: str | None, limit: int
) -> list[dict[str, Any]]:
    a = audit_log.c
    query = sa.select(audit_log).order_by(a.at.desc(), a.id.desc()).limit(limit)
    if location:
        query = query.where(a.location_id == location)
    failed = sa.or_(*(a.action.like(f"%{word}%") for word in _FAILED_ACTIONS))
    if outcome == "failed":
        query = query.where(failed)
    elif outcome == "ok":
        query = query.where(sa.not_(failed))
    with engine.connect() as conn:
        found = conn.execute(query).all()
    return [
        {
            "at": float(row.at),
            "location_id": row.location_id,
            "direction": "DripJobs → GHL",
            "what": f"{row.entity_type} {row.source_id}",
            "action": row.action,
            "ok": not any(word in row.action for word in _FAILED_ACTIONS),
            "detail": row.detail or (f"GHL id {row.ghl_id}" if row.ghl_id else ""),
        }
        for row in found
    ]


def _to_dripjobs(
    engine: sa.Engine, location: str | None, outcome: str | None, limit: int
) -> list[dict[str, Any]]:
    from ghlsync.store._tables_twoway import writeback_outbox

    o = writeback_outbox.c
    query = sa.select(writeback_outbox).order_by(o.updated_at.desc()).limit(limit)
    if location:
        query = query.where(o.location_id == location)
    if outcome == "failed":
        query = query.where(o.status.in_(("dead", "skipped")))
    elif outcome == "ok":
        query = query.where(o.status.not_in(("dead", "skipped")))
    with engine.connect() as conn:
        found = conn.execute(query).all()
    return [
        {
            "at": float(row.updated_at),
            "location_id": row.location_id,
            "direction": "GHL → DripJobs",
            "what": f"{row.ghl_entity} {row.ghl_id}",
            "action": f"{row.action}: {row.status}",
            "ok": row.status not in ("dead", "skipped"),
            "detail": row.last_error or "",
        }
        for row in found
    ]
