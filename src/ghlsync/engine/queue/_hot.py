"""Merging a batch's deliveries into a work row without decoding and encoding it each time.

`accept_many` merges each delivery to a known entity into the row it reads (`_batch`). Done
plainly, every merge decodes the row's payload and stamps (JSON), copies them field by field
and encodes both again: in the merge-heavy case (many deliveries to few entities) that was
most of the receiver's work per delivery beyond the HTTP itself. Three things avoid it:

- **Hot rows.** The process remembers, for the rows it merged into last, the payload and
  stamps text it wrote and their decoded values (`HOT_ROWS`, shared by the writer threads:
  on PostgreSQL consecutive batches to one entity are often written by different ones). The
  next merge into such a row uses the decoded values only when the row it has just read and
  locked holds exactly that text: any other writer's change (a worker, another process, a
  rolled-back batch) shows as other text, which is then decoded. Equal text decodes to
  equal values, so a remembered state is never a stale one, whichever store or thread the
  row id was remembered from: the id only finds the entry, the text decides.
- **Whole replacements.** A delivery that carries exactly the row's fields, in the row's
  order, when every field of the row has one stamp and that stamp is not newer than the
  delivery's (the usual update: a sender sends the same fields each time), replaces every
  field. `merge` would then leave the delivery's payload with every field stamped with its
  timestamp, which encode as the delivery's payload text in the inbox and `_stamps_json`: no
  merge loop and no encoding. Any other delivery takes `merge`.
- **Stale deliveries.** A delivery older than that one stamp, carrying none but the row's
  fields (two senders of one entity, or a retry, arriving out of order), takes no field:
  `merge` would leave the payload and stamps as they are, so their text stays, unencoded.

Either way the row ends with the same text as `merge` and `dumps` would leave
(`tests/test_engine_queue_hot.py` compares them on random rows and deliveries).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ghlsync.engine.queue._codec import dump_events, dumps, load_events, loads
from ghlsync.engine.queue._merge import (
    EntityState,
    EventList,
    Incoming,
    keeps_all,
    merge,
    merge_kept,
    merge_whole,
    replaces_all,
)

__all__ = ["HOT_ROWS", "Fields", "HotRows", "events_json", "merge_into", "stamps_json"]


@dataclass(frozen=True, slots=True)
class Fields:
    """A row's payload and stamps as text and as values; `keys` when every field has the one
    stamp `stamp` (the stamps text is then `stamps_json(keys, stamp)`), else None."""

    payload_text: str
    stamps_text: str
    payload: Mapping[str, Any]
    stamps: Mapping[str, float | None]
    keys: tuple[str, ...] | None = None
    stamp: float | None = None

    @staticmethod
    def of(
        payload_text: str,
        stamps_text: str,
        payload: Mapping[str, Any],
        stamps: Mapping[str, float | None],
    ) -> Fields:
        keys = tuple(payload)
        if keys and tuple(stamps) == keys:
            stamp = stamps[keys[0]]
            if stamps_json(keys, stamp) == stamps_text:  # by the text: 1 and 1.0 stay apart
                return Fields(payload_text, stamps_text, payload, stamps, keys, stamp)
        return Fields(payload_text, stamps_text, payload, stamps)


_MAX_ROWS = 1_000


class HotRows:
    """The fields of the rows merged into last, as they were written (safe to share between
    threads: entries are immutable, and a dict's get and set are atomic)."""

    def __init__(self) -> None:
        self._rows: dict[int, Fields] = {}

    def fields(self, row_id: int, payload_text: str, stamps_text: str) -> Fields:
        """The row's fields, decoded unless the text is the one remembered for it."""
        known = self._rows.get(row_id)
        if (
            known is not None
            and known.payload_text == payload_text
            and known.stamps_text == stamps_text
        ):
            return known
        return Fields.of(payload_text, stamps_text, loads(payload_text), loads(stamps_text))

    def remember(self, row_id: int, fields: Fields) -> None:
        if row_id not in self._rows and len(self._rows) >= _MAX_ROWS:
            self._rows.clear()  # refilled by the next merges: simpler than an LRU
        self._rows[row_id] = fields


HOT_ROWS = HotRows()


def merge_into(
    row: EntityState,
    fields: Fields,
    incomings: Sequence[tuple[Incoming, str]],
    *,
    settled: bool,
) -> tuple[EntityState, Fields]:
    """`merge` of each (delivery, its payload text) in order into `row` (whose payload and
    stamps are `fields`); `settled` when the row is done or dead (a new round starts at its
    first delivery). The merged state and its fields, encoded."""
    encoded = True  # `fields` holds the text of `row`'s payload and stamps
    for incoming, payload_text in incomings:
        keys, stamp = fields.keys, fields.stamp
        if keys is not None and replaces_all(keys, stamp, incoming):
            row = merge_whole(row, incoming, settled=settled)
            at = incoming.source_updated_at
            fields = Fields(payload_text, stamps_json(keys, at), row.payload, row.stamps, keys, at)
            encoded = True
        elif keys is not None and keeps_all(fields.payload, stamp, incoming):
            row = merge_kept(row, incoming, settled=settled)  # the fields and their text stay
        else:
            row = merge(row, incoming, settled=settled)
            fields = Fields("", "", row.payload, row.stamps)  # encoded at the end
            encoded = False
        settled = False  # after its first delivery the row is pending (or still leased)
    if not encoded:  # a merge went field by field: encode what the last one left
        fields = Fields.of(dumps(row.payload), dumps(row.stamps), row.payload, row.stamps)
    return row, fields


def stamps_json(fields: tuple[str, ...], stamp: float | None) -> str:
    """`dumps(dict.fromkeys(fields, stamp))`, from the fields' encoded names (memoised: a
    sender sends the same names every time)."""
    return _stamp_text(stamp).join(_stamps_frame(fields))


def _stamp_text(stamp: float | None) -> str:
    """The stamp as `dumps` writes it (`float.__repr__` for a finite float)."""
    if type(stamp) is float and math.isfinite(stamp):
        return float.__repr__(stamp)
    return dumps({"": stamp})[4:-1]


@functools.lru_cache(maxsize=1024)
def _stamps_frame(fields: tuple[str, ...]) -> tuple[str, ...]:
    """The text around each field's stamp: `{"a":`, `,"b":`, ..., `}`."""
    names = [dumps({name: 0})[1:-2] for name in fields]
    return ("{" + names[0], *("," + name for name in names[1:]), "}") if names else ("{}",)


@functools.lru_cache(maxsize=1024)
def events_json(events: EventList) -> str:
    """`dump_events`, memoised: rows hold a few distinct event lists."""
    return dump_events(events)


@functools.lru_cache(maxsize=1024)
def events_of(text: str | None, event: str) -> EventList:
    """`load_events`, memoised."""
    return load_events(text, event)
