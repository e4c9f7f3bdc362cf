"""The pure decisions: tag deltas, body diffs, value matching, hashes, custom-field keys."""

from __future__ import annotations

from typing import Any

import pytest

from ghlsync.engine.flows.to_ghl._customfields import _norm
from ghlsync.engine.flows.to_ghl._kinds import APPOINTMENT, TASK
from ghlsync.engine.flows.to_ghl._plan import canonical_hash, changed_keys, tag_delta
from ghlsync.engine.flows.to_ghl._records import answer_id, matches, records, same


@pytest.mark.parametrize(
    ("current", "add", "prefixes", "to_add", "to_remove", "after"),
    [
        ([], ["lead"], [], ("lead",), (), {"lead"}),
        (["lead"], ["lead"], [], (), (), {"lead"}),
        (["deal:estimate"], ["deal:won"], ["deal:"],
         ("deal:won",), ("deal:estimate",), {"deal:won"}),
        (["deal:won", "vip"], ["deal:won"], ["deal:"], (), (), {"deal:won", "vip"}),
        (["Lead"], ["lead"], [], (), (), {"lead"}),
        (["source:x"], [], ["deal:"], (), (), {"source:x"}),
    ],
)  # fmt: skip
def test_tag_delta(
    current: list[str],
    add: list[str],
    prefixes: list[str],
    to_add: tuple[str, ...],
    to_remove: tuple[str, ...],
    after: set[str],
) -> None:
    delta = tag_delta(current, add, prefixes)
    assert (delta.add, delta.remove, set(delta.after)) == (to_add, to_remove, after)


def test_changed_keys_sees_changes_additions_and_removals() -> None:
    assert changed_keys({"a": 1, "b": 2, "c": 3}, {"a": 1, "b": 5, "d": 4}) == {"b", "c", "d"}
    assert changed_keys({"a": 1}, {"a": 1}) == set()


def test_canonical_hash_ignores_key_order_but_not_values() -> None:
    assert canonical_hash({"a": 1, "b": [1, 2]}) == canonical_hash({"b": [1, 2], "a": 1})
    assert canonical_hash({"a": 1}) != canonical_hash({"a": "1"})


@pytest.mark.parametrize(
    ("ours", "theirs", "equal"),
    [
        ("2026-12-01T10:00:00Z", "2026-12-01T05:00:00-05:00", True),
        ("2026-12-01T10:00:00Z", "2026-12-01T10:00:01Z", False),
        ("2026-12-01T10:00:00-05:00", "2026-12-01 15:00:00", True),  # GHL's naive UTC form
        ("2026-12-01T10:00:00-05:00", "2026-12-01 10:00:00", True),  # ... or local wall time
        ("2026-12-01T10:00:00-05:00", "2026-12-01 11:00:00", False),
        ("Ann@Example.com", "ann@example.com", True),
        ("Ann", "ann", False),  # names keep their case
        (True, True, True),
        (None, "", False),
    ],
)
def test_same(ours: Any, theirs: Any, equal: bool) -> None:
    assert same(ours, theirs) is equal


def test_answers_are_read_in_every_shape_ghl_uses() -> None:
    assert answer_id({"task": {"id": "t1"}}, "task") == "t1"
    assert answer_id({"id": "e1", "calendarId": "c"}, "appointment", "event") == "e1"
    assert answer_id({"contact": None}, "contact") is None
    assert records({"events": [{"id": "a"}, "junk"]}, "events") == [{"id": "a"}]
    assert records({"contact": {"id": "c"}}, "contact") == [{"id": "c"}]
    assert records({"contact": None}, "contact") == []


def test_lost_creates_are_matched_on_their_identifying_fields() -> None:
    pending = {"title": "Call", "dueDate": "2026-12-01T10:00:00Z", "completed": False}
    record = {"id": "t", "title": "Call", "dueDate": "2026-12-01T10:00:00.000Z", "completed": True}
    assert matches(record, pending, TASK.match_keys)
    assert not matches({**record, "title": "Other"}, pending, TASK.match_keys)


def test_calls_are_shaped_per_endpoint() -> None:
    status = TASK.update("c1", "t1", {"completed": True})
    assert (status.method, status.path) == ("PUT", "/contacts/c1/tasks/t1/completed")
    full = TASK.update("c1", "t1", {"completed": True, "title": "x"})
    assert full.path == "/contacts/c1/tasks/t1"
    create = APPOINTMENT.create("c1", {"startTime": "2026-12-01T10:00:00Z"}, "loc", "cal")
    assert create.body == {
        "startTime": "2026-12-01T10:00:00Z", "calendarId": "cal", "locationId": "loc",
        "contactId": "c1",
    }  # fmt: skip
    assert create.version == "2021-04-15"
    assert APPOINTMENT.delete("c1", "e1").path == "/calendars/events/e1"


@pytest.mark.parametrize(
    ("key", "norm"),
    [("contact.roof_type", "contact.roof_type"), ("Roof_Type", "contact.roof_type")],
)
def test_custom_field_keys_compare_with_the_contact_prefix(key: str, norm: str) -> None:
    assert _norm(key) == norm
