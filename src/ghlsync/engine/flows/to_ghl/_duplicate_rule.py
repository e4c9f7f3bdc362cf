"""Whether GHL allows duplicate contacts in a location: read once, cached in the store.

The contact flow creates a new contact with `POST /contacts/` (tags included: one call) only
where GHL refuses duplicates. There a create can never land on an existing person, so its
tags cannot overwrite anyone's; a person who exists is refused with 400 instead. The setting
is `GET /locations/{locationId}` → `location.settings.allowDuplicateContact`, read at most once
per `REFRESH_AFTER` per location. An answer without it, or a refused read (say, a token
without `locations.readonly`), is cached as unknown (None) just as long, so it costs one call
an hour, not one per contact; unknown means the flow keeps the upsert path.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from ghlsync._clock import Clock
from ghlsync.engine.flows._inflight import entity_lock
from ghlsync.engine.flows.to_ghl._plan import PlannedCall, Sender
from ghlsync.ghl._errors import AuthenticationError, FatalError, RetriableError, SkippableError
from ghlsync.store._tables_sync import ghl_location_settings

REFRESH_AFTER = 3600.0
# The store's row is also remembered in this process for a minute: every new contact asks,
# and a store read per new contact (a thread hop and a transaction) was a visible part of the
# worker's CPU per change (docs/benchmarks.md). Another process's refresh shows within it.
MEMO_SECONDS = 60.0

_Cached = tuple[bool | None, float]
_MISSING: Any = object()
# engine -> location -> (the store's row or None, remembered until)
_MEMO: weakref.WeakKeyDictionary[sa.Engine, dict[str, tuple[_Cached | None, float]]] = (
    weakref.WeakKeyDictionary()
)


async def duplicates_allowed(
    engine: sa.Engine, location_id: str, clock: Clock, sender: Sender
) -> bool | None:
    """True/False as GHL says for the location; None when it could not be read.

    A dry run (preview) never fetches: it uses the cache, else None (the upsert path).
    """
    # One reader per location at a time: a batch of new contacts asks GHL once, not N times.
    async with entity_lock(location_id, "location-settings", location_id):
        cached = await _read(engine, location_id, clock.now())
        if cached is not None and clock.now() - cached[1] < REFRESH_AFTER:
            return cached[0]
        if not sender.live:
            return cached[0] if cached is not None else None
        try:
            answer = await sender.send(
                PlannedCall("GET", f"/locations/{location_id}", purpose="settings")
            )
        except AuthenticationError:
            raise  # the token is broken: every call would fail, the worker must see it
        except RetriableError:
            return cached[0] if cached is not None else None  # ask again next time
        except (FatalError, SkippableError):
            value: bool | None = None
        else:
            value = allow_duplicate_contact(answer)
        now = clock.now()
        await asyncio.to_thread(_store, engine, location_id, value, now)
        _MEMO.setdefault(engine, {})[location_id] = ((value, now), now + MEMO_SECONDS)
        return value


async def _read(engine: sa.Engine, location_id: str, now: float) -> _Cached | None:
    """The store's row, remembered in this process for `MEMO_SECONDS`."""
    memo = _MEMO.setdefault(engine, {})
    cached, until = memo.get(location_id, (_MISSING, 0.0))
    if cached is _MISSING or now >= until:
        cached = await asyncio.to_thread(_cached, engine, location_id)
        memo[location_id] = (cached, now + MEMO_SECONDS)
    return cached  # type: ignore[no-any-return]


def allow_duplicate_contact(answer: Any) -> bool | None:
    """`location.settings.allowDuplicateContact` of a `GET /locations/{id}` answer."""
    location = answer.get("location") if isinstance(answer, Mapping) else None
    settings = location.get("settings") if isinstance(location, Mapping) else None
    value = settings.get("allowDuplicateContact") if isinstance(settings, Mapping) else None
    return value if isinstance(value, bool) else None


def _cached(engine: sa.Engine, location_id: str) -> _Cached | None:
    table = ghl_location_settings
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(table.c.allow_duplicate_contact, table.c.fetched_at).where(
                table.c.location_id == location_id
            )
        ).first()
    if row is None:
        return None
    value = row.allow_duplicate_contact
    return (None if value is None else bool(value)), float(row.fetched_at)


def _store(engine: sa.Engine, location_id: str, value: bool | None, now: float) -> None:
    table = ghl_location_settings
    row = {"location_id": location_id, "allow_duplicate_contact": value, "fetched_at": now}
    # Another process may store the same answer at the same moment: theirs is as good.
    with contextlib.suppress(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(sa.delete(table).where(table.c.location_id == location_id))
        conn.execute(sa.insert(table), row)
