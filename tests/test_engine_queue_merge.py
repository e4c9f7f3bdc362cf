"""Merge rules as properties: whatever the arrival order, the newest value of each field wins."""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import given
from hypothesis import strategies as st

from ghlsync.engine.queue._merge import (
    DELETE,
    STICKY,
    EntityState,
    Incoming,
    event_rank,
    first_state,
    merge,
)

FIELDS = ("first_name", "email", "phone", "task_status")
EVENTS = ("customer.created", "customer.updated", "task.completed", "task.deleted")

deliveries = st.lists(
    st.tuples(
        st.sampled_from(EVENTS),
        st.dictionaries(st.sampled_from(FIELDS), st.integers(0, 9), min_size=1),
        st.integers(0, 5).map(float),
    ),
    min_size=1,
    max_size=8,
)


def _fold(items: Sequence[tuple[str, dict[str, int], float | None]]) -> EntityState:
    state: EntityState | None = None
    for event, payload, stamp in items:
        incoming = Incoming(event, event_rank(event), payload, stamp)
        state = first_state(incoming) if state is None else merge(state, incoming, settled=False)
    assert state is not None
    return state


@given(deliveries)
def test_each_field_holds_the_value_with_the_newest_timestamp(
    items: list[tuple[str, dict[str, int], float]],
) -> None:
    state = _fold(items)
    for field in FIELDS:
        carrying = [(stamp, index) for index, (_, p, stamp) in enumerate(items) if field in p]
        if not carrying:
            assert field not in state.payload
            continue
        _, winner = max(carrying)  # newest timestamp; among equals the last to arrive
        assert state.payload[field] == items[winner][1][field]
    assert state.source_updated_at == max(stamp for _, _, stamp in items)


@given(deliveries)
def test_without_timestamps_the_last_arrival_wins(
    items: list[tuple[str, dict[str, int], float]],
) -> None:
    state = _fold([(e, p, None) for e, p, _ in items])
    expected: dict[str, int] = {}
    for _, payload, _ in items:
        expected.update(payload)
    assert state.payload == expected


@given(deliveries)
def test_event_list_shape(items: list[tuple[str, dict[str, int], float]]) -> None:
    state = _fold(items)
    names = [name for name, _ in state.events]
    ranks = [rank for _, rank in state.events]
    assert len(names) == len(set(names))  # every event runs once
    assert ranks == sorted(ranks, key=lambda r: r >= STICKY)  # upserts before sticky ones
    if DELETE in ranks:
        assert state.events == (state.events[-1],)  # a delete runs alone
    assert state.event == names[-1]


@given(deliveries, st.booleans())
def test_a_delete_is_undone_only_by_a_strictly_newer_event(
    items: list[tuple[str, dict[str, int], float]], settled: bool
) -> None:
    event, payload, stamp = items[0]
    state = first_state(Incoming(event, event_rank(event), payload, stamp))
    for event, payload, stamp in items[1:]:
        incoming = Incoming(event, event_rank(event), payload, stamp)
        after = merge(state, incoming, settled=settled)
        if event_rank(state.event) == DELETE:
            assert state.source_updated_at is not None
            newer = stamp > state.source_updated_at
            assert (after.event == state.event) or newer
        if event_rank(event) == DELETE and stamp >= (state.source_updated_at or 0):
            assert after.event == event  # a delete that is not older wins
        state = after


def test_ranks_from_action_or_verb() -> None:
    assert event_rank("task.deleted") == DELETE
    assert event_rank("appointment.canceled") == STICKY
    assert event_rank("customer.updated") == 0
    assert event_rank("job.closed", "complete") == STICKY
    assert event_rank("task.deleted", "upsert") == 0
