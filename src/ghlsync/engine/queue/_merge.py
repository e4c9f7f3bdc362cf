"""How a new delivery merges into an entity's work row. Pure functions, no I/O.

The queue holds entities, not events: every delivery for one entity folds into its one work
row, so the worker syncs the entity's latest state once instead of replaying each event.

**Order.** A delivery is *older* only when both it and the row carry a source timestamp
(`updated_at`) and its timestamp is strictly smaller; otherwise it counts as newer (arrival
order, ties included).

**Payload.** Field by field: a delivery's value replaces the row's unless the row's value came
from a delivery that is newer by the rule above (each field remembers the source timestamp it
came with, in `stamps`). So an older delivery only fills fields the row lacks or holds older
values of, and never overwrites newer ones. The row keeps the largest source timestamp seen.

**Events.** Each event has a rank (`event_rank`): upsert-like 0, complete/cancel 2, delete 3.
The row keeps the list of events still to run (`events`, in the order the worker runs them)
and the effective event (`event`, the last of that list):

- A delete is final: it replaces the list, and later non-delete events are ignored unless their
  source timestamp is strictly newer than the delete's. A delete older than the row's state
  is ignored (the newer update wins).
- Complete and cancel are sticky: they stay in the list after the entity is synced, so a later
  update runs first and the completion is asserted again after it (`task.completed` then
  `task.updated` still leaves the task completed, even when the update lacks a status field).
- Upsert-like events each run once, in arrival order, before any rank-2 event, all with the
  merged payload (so `lead.created` tags are not lost when `deal.stage_changed` follows).

Once a row is synced (`done`) or dead-lettered, only its sticky events carry over to the next
round.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

UPSERT = 0
STICKY = 2
DELETE = 3

_ACTION_RANKS = {"delete": DELETE, "complete": STICKY, "cancel": STICKY, "upsert": UPSERT}
_VERB_RANKS = {
    "deleted": DELETE,
    "removed": DELETE,
    "completed": STICKY,
    "canceled": STICKY,
    "cancelled": STICKY,
}

EventList = tuple[tuple[str, int], ...]


def event_rank(event: str, action: str | None = None) -> int:
    """The merge rank of an event: from its configured action, else from its name's verb."""
    if action is not None and action in _ACTION_RANKS:
        return _ACTION_RANKS[action]
    verb = event.rsplit(".", 1)[-1].lower()
    return _VERB_RANKS.get(verb, UPSERT)


@dataclass(frozen=True, slots=True)
class EntityState:
    """The mergeable part of a work row."""

    events: EventList
    payload: Mapping[str, Any]
    source_updated_at: float | None
    stamps: Mapping[str, float | None]  # per field: the source timestamp its value came with

    @property
    def event(self) -> str:
        """The effective event: the last one the worker runs."""
        return self.events[-1][0]


@dataclass(frozen=True, slots=True)
class Incoming:
    """The mergeable part of one delivery."""

    event: str
    rank: int
    payload: Mapping[str, Any]
    source_updated_at: float | None


def is_older(incoming: float | None, current: float | None) -> bool:
    """True only when both timestamps are known and `incoming` is strictly earlier."""
    return incoming is not None and current is not None and incoming < current


def is_strictly_newer(incoming: float | None, current: float | None) -> bool:
    """True only when both timestamps are known and `incoming` is strictly later."""
    return incoming is not None and current is not None and incoming > current


def first_state(incoming: Incoming) -> EntityState:
    """The state of an entity seen for the first time."""
    return EntityState(
        ((incoming.event, incoming.rank),),
        dict(incoming.payload),
        incoming.source_updated_at,
        dict.fromkeys(incoming.payload, incoming.source_updated_at),
    )


def merge(row: EntityState, incoming: Incoming, *, settled: bool) -> EntityState:
    """Fold `incoming` into `row`; `settled` when the row was done or dead (a new round)."""
    payload, stamps = _merge_fields(row, incoming)
    return _merged(row, incoming, payload, stamps, settled=settled)


def replaces_all(fields: tuple[str, ...], stamp: float | None, incoming: Incoming) -> bool:
    """True when `incoming` takes every field of a row whose fields are `fields`, in that
    order, all stamped `stamp`: it carries the same fields in the same order and `stamp` is
    not newer. Then `merge` leaves its payload, every field stamped with its timestamp."""
    return tuple(incoming.payload) == fields and not is_older(incoming.source_updated_at, stamp)


def merge_whole(row: EntityState, incoming: Incoming, *, settled: bool) -> EntityState:
    """`merge` when `replaces_all` holds for `row` and `incoming`, without the field loop."""
    stamps = dict.fromkeys(incoming.payload, incoming.source_updated_at)
    return _merged(row, incoming, incoming.payload, stamps, settled=settled)


def keeps_all(fields: Mapping[str, Any], stamp: float | None, incoming: Incoming) -> bool:
    """True when `incoming` takes no field of a row whose fields are `fields`, all stamped
    `stamp`: it is older than `stamp` and carries none but those fields. Then `merge` leaves
    the row's payload and stamps as they are."""
    return is_older(incoming.source_updated_at, stamp) and fields.keys() >= incoming.payload.keys()


def merge_kept(row: EntityState, incoming: Incoming, *, settled: bool) -> EntityState:
    """`merge` when `keeps_all` holds for `row` and `incoming`, without the field loop."""
    return _merged(row, incoming, row.payload, row.stamps, settled=settled)


def _merged(
    row: EntityState,
    incoming: Incoming,
    payload: Mapping[str, Any],
    stamps: Mapping[str, float | None],
    *,
    settled: bool,
) -> EntityState:
    older = is_older(incoming.source_updated_at, row.source_updated_at)
    stamp = _latest(row.source_updated_at, incoming.source_updated_at)
    events = _merge_events(row, incoming, older=older, settled=settled)
    return EntityState(events, payload, stamp, stamps)


def _merge_fields(
    row: EntityState, incoming: Incoming
) -> tuple[dict[str, Any], dict[str, float | None]]:
    payload, stamps = dict(row.payload), dict(row.stamps)
    at = incoming.source_updated_at
    for name, value in incoming.payload.items():
        if name in payload and is_older(at, stamps.get(name)):
            continue  # the row holds a newer value of this field
        payload[name], stamps[name] = value, at
    return payload, stamps


def _latest(a: float | None, b: float | None) -> float | None:
    known = [t for t in (a, b) if t is not None]
    return max(known) if known else None


def _merge_events(row: EntityState, incoming: Incoming, *, older: bool, settled: bool) -> EventList:
    new = (incoming.event, incoming.rank)
    row_rank = row.events[-1][1]
    if row_rank == DELETE:
        # A delete is final unless the source says, with a later timestamp, that it came back.
        if is_strictly_newer(incoming.source_updated_at, row.source_updated_at):
            return (new,)
        return row.events
    if incoming.rank == DELETE:
        return row.events if older else (new,)
    carried = _sticky(row.events) if settled else row.events
    return _ordered((*carried, new))


def _sticky(events: EventList) -> EventList:
    return tuple(e for e in events if e[1] >= STICKY)


def _ordered(events: Sequence[tuple[str, int]]) -> EventList:
    """Distinct events, upserts first (arrival order), then sticky ones (last arrival last)."""
    seen: dict[str, int] = {}
    for name, rank in events:
        seen.pop(name, None)  # a repeated event moves to its latest arrival position
        seen[name] = rank
    items = list(seen.items())
    return tuple(e for e in items if e[1] < STICKY) + tuple(e for e in items if e[1] >= STICKY)
