"""Per-field ordering of contacts: last writer wins field by field, as in the queue's merge.

A contact is written by its customer's own events and by the partial contacts that task, note
and appointment events carry, each stamped with its own event's source timestamp. These
arrive in any order, so one timestamp per contact cannot order them: a task's 10:30 stamp must
not block the customer's 10:10 rename of fields the task did not carry, and a task's 10:05 copy
of the customer must not undo that rename. So the contact's snapshot keeps a stamp per part:

- `body:<GHL field>` and `field:<custom field key>`;
- `tags:<prefix>` per replace-prefix tag rule (`tags:deal:` covers every `deal:*` tag);
- `tag:<tag>` for a tag outside those groups.

`*` is a floor for parts without a stamp of their own: the delete time of a tombstone, or the
one timestamp of a state written before per-field stamps existed. A mapped contact applies
only the parts whose stored stamp is not newer than its own; stamps only move forward; an
event without a timestamp applies everything (arrival order) and moves no stamp.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from ghlsync.engine.flows.to_ghl._model import updated_at
from ghlsync.engine.state._syncstate import SyncState
from ghlsync.mapping import MappedEntity

Stamps = dict[str, float]
FLOOR = "*"


def stored(state: SyncState | None) -> Stamps:
    """The stamps a state holds; an older state's one timestamp becomes the floor."""
    if state is None:
        return {}
    stamps = state.snapshot.get("stamps")
    if isinstance(stamps, Mapping):
        return {str(k): float(v) for k, v in stamps.items() if isinstance(v, int | float)}
    if state.source_updated_at is None:
        return {}
    return {FLOOR: float(state.source_updated_at)}


def parts(entity: MappedEntity) -> list[str]:
    """The stamp keys of everything the entity carries."""
    keys = [f"body:{k}" for k in entity.body]
    keys += [f"field:{k}" for k in entity.custom_fields]
    keys += [f"tags:{p}" for p in entity.tags_remove_prefixes]
    keys += [_tag_part(t, entity.tags_remove_prefixes) for t in entity.tags_add]
    return list(dict.fromkeys(keys))


def fresh(entity: MappedEntity, state: SyncState | None) -> MappedEntity | None:
    """The entity without the parts GHL already holds newer values of.

    Returns the entity itself when nothing is older, and None when everything it carries is
    (the whole entity is stale).
    """
    at = updated_at(entity)
    stamps = stored(state)
    if at is None or not stamps:
        return entity

    def keep(key: str) -> bool:
        stamp = stamps.get(key, stamps.get(FLOOR))
        return stamp is None or at >= stamp  # ties: arrival order, as in the queue

    prefixes = entity.tags_remove_prefixes
    kept = dataclasses.replace(
        entity,
        body={k: v for k, v in entity.body.items() if keep(f"body:{k}")},
        custom_fields={k: v for k, v in entity.custom_fields.items() if keep(f"field:{k}")},
        tags_add=tuple(t for t in entity.tags_add if keep(_tag_part(t, prefixes))),
        tags_remove_prefixes=tuple(p for p in prefixes if keep(f"tags:{p}")),
    )
    if parts(kept) == parts(entity):
        return entity
    return kept if parts(kept) or not parts(entity) else None


def advanced(entity: MappedEntity, state: SyncState | None) -> Stamps:
    """The stored stamps moved forward by what `entity` writes (never backward)."""
    stamps = stored(state)
    at = updated_at(entity)
    if at is None:
        return stamps
    for key in parts(entity):
        stamp = stamps.get(key, stamps.get(FLOOR))
        stamps[key] = at if stamp is None else max(stamp, at)
    return stamps


def latest(stamps: Mapping[str, float]) -> float | None:
    """The newest stamp: the contact's overall version (what a late delete is checked against)."""
    return max(stamps.values(), default=None)


def _tag_part(tag: str, prefixes: tuple[str, ...]) -> str:
    low = tag.lower()
    for prefix in prefixes:
        if low.startswith(prefix.lower()):
            return f"tags:{prefix}"
    return f"tag:{low}"
