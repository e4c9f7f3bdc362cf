"""Merging without decoding or encoding the row (`engine/queue/_hot.py`) leaves the same text
as `merge` and `dumps`, and a remembered row is used only while the store holds its text."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from ghlsync.engine import accept, accept_many
from ghlsync.engine.queue._codec import dump_events, dumps, loads
from ghlsync.engine.queue._hot import Fields, HotRows, merge_into, stamps_json
from ghlsync.engine.queue._merge import EntityState, Incoming, event_rank, merge
from ghlsync.store import begin_immediate
from ghlsync.store._tables_engine import work_items
from tests._engine_kit import delivery
from tests.test_engine_queue_accept_many import as_half, snapshot

FIELDS = ("customer_id", "first_name", "email", "phone")
EVENTS = ("customer.updated", "customer.created", "task.completed", "customer.deleted")
# ints and floats apart: `dumps` writes 5 and 5.0 differently, and so must every shortcut
STAMPS = st.one_of(st.none(), st.integers(0, 6), st.integers(0, 6).map(float))
# a sender's usual delivery: the same fields in the same order; sometimes fewer or reordered
PAYLOADS = st.one_of(
    st.just(FIELDS),
    st.permutations(FIELDS).map(tuple),
    st.lists(st.sampled_from(FIELDS), unique=True).map(tuple),
).flatmap(lambda keys: st.fixed_dictionaries({k: st.integers(0, 3) for k in keys}))
INCOMINGS = st.lists(
    st.tuples(st.sampled_from(EVENTS), PAYLOADS, STAMPS).map(
        lambda t: Incoming(t[0], event_rank(t[0]), t[1], t[2])
    ),
    min_size=1,
    max_size=5,
)


def _row(payload: Mapping[str, Any], stamps: Mapping[str, Any], at: float | None) -> EntityState:
    return EntityState((("customer.updated", 0),), payload, at, stamps)


@settings(max_examples=300)
@given(
    PAYLOADS,
    st.one_of(STAMPS.map(lambda s: ("one", s)), st.lists(STAMPS, min_size=4, max_size=4)),
    STAMPS,
    INCOMINGS,
    st.booleans(),
)
def test_merge_into_leaves_the_text_of_merge_and_dumps(
    payload: dict[str, Any],
    stamp_spec: Any,
    at: float | None,
    incomings: list[Incoming],
    settled: bool,
) -> None:
    if isinstance(stamp_spec, tuple):  # every field one stamp (the usual row)
        stamps = dict.fromkeys(payload, stamp_spec[1])
    else:
        stamps = dict(zip(payload, stamp_spec, strict=False))
    payload_text, stamps_text = dumps(payload), dumps(stamps)
    fields = HotRows().fields(1, payload_text, stamps_text)

    expected = _row(loads(payload_text), loads(stamps_text), at)
    first = settled
    for incoming in incomings:
        expected = merge(expected, incoming, settled=first)
        first = False
    state, merged = merge_into(
        _row(fields.payload, fields.stamps, at),
        fields,
        [(incoming, dumps(incoming.payload)) for incoming in incomings],
        settled=settled,
    )
    assert merged.payload_text == dumps(expected.payload)
    assert merged.stamps_text == dumps(expected.stamps)
    assert dump_events(state.events) == dump_events(expected.events)
    assert state.source_updated_at == expected.source_updated_at
    assert loads(merged.payload_text) == dict(merged.payload)
    assert loads(merged.stamps_text) == dict(merged.stamps)


@given(st.lists(st.sampled_from(FIELDS), unique=True).map(tuple), STAMPS)
def test_stamps_json_is_dumps_of_one_stamp_per_field(keys: tuple[str, ...], stamp: Any) -> None:
    assert stamps_json(keys, stamp) == dumps(dict.fromkeys(keys, stamp))


def test_an_older_delivery_of_the_rows_fields_leaves_its_text_as_it_was() -> None:
    """Two senders of one entity out of order: the older delivery takes no field, so the
    row's text is kept, not encoded again (the property above checks it is `merge`'s)."""
    payload = {"customer_id": "c1", "email": "new"}
    fields = HotRows().fields(1, dumps(payload), stamps_json(tuple(payload), 5.0))
    older = Incoming("customer.created", 0, {"email": "old"}, 4.0)
    state, merged = merge_into(
        _row(fields.payload, fields.stamps, 5.0),
        fields,
        [(older, dumps(older.payload))],
        settled=False,
    )
    assert merged is fields
    assert state.source_updated_at == 5.0
    assert [name for name, _ in state.events] == ["customer.updated", "customer.created"]


def test_a_remembered_row_is_used_only_while_its_text_is_the_stored_one() -> None:
    hot = HotRows()
    payload, stamps = {"email": "a"}, {"email": 5.0}
    written = Fields.of(dumps(payload), dumps(stamps), payload, stamps)
    hot.remember(7, written)
    assert hot.fields(7, dumps(payload), dumps(stamps)) is written
    changed = hot.fields(7, dumps({"email": "b"}), dumps(stamps))  # another writer's text
    assert changed is not written
    assert dict(changed.payload) == {"email": "b"}
    assert dict(hot.fields(7, dumps(payload), dumps({"email": 5})).stamps) == {"email": 5}


def test_a_row_changed_by_another_writer_is_merged_from_the_store(
    engine_store: sa.Engine,
) -> None:
    """Batches to one entity, its row rewritten between them behind the receiver's back:
    the rows end as `accept` of the same deliveries leaves them."""
    batches = [
        [delivery("c1", delivery_id=f"{n}-{i}", updated_at=float(n), email=f"e{n}", phone="1")]
        for n in range(6)
        for i in range(2)
    ]
    with engine_store.connect() as conn:
        for n, batch in enumerate(batches):
            with begin_immediate(conn):
                for d in batch:
                    accept(conn, as_half(d, "A"))
                accept_many(conn, [as_half(d, "B") for d in batch])
            if n % 3 == 1:  # what a worker or another process may write meanwhile
                with begin_immediate(conn):
                    conn.execute(
                        sa.update(work_items).values(
                            payload=dumps({"customer_id": "c1", "email": "x", "tags": "t"}),
                            stamps=dumps({"customer_id": 1.0, "email": 9.0, "tags": 2}),
                        )
                    )
    assert snapshot(engine_store, "B") == snapshot(engine_store, "A")
