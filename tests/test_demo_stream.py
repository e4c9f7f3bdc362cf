"""The demo stream: deterministic, realistic, and consistent with its `Expected` model."""

from __future__ import annotations

from collections import Counter

import ghlsync.demo
from ghlsync.demo import build_stream


def test_demo_exports_are_pinned() -> None:
    assert sorted(ghlsync.demo.__all__) == [
        "Answer",
        "DeadLetterLine",
        "DemoEvent",
        "Expected",
        "Pipeline",
        "PipelineError",
        "PipelineOptions",
        "Summary",
        "build_stream",
        "pipeline_config",
        "run_pipeline",
        "run_stream",
        "send_stream",
        "verify_answers",
        "verify_dead_letters",
        "verify_state",
    ]


def test_the_same_seed_gives_the_same_stream() -> None:
    first, second, other = (
        build_stream(20, seed=4),
        build_stream(20, seed=4),
        build_stream(20, seed=5),
    )
    assert [(e.event, e.body) for e in first[0]] == [(e.event, e.body) for e in second[0]]
    assert [(e.event, e.body) for e in first[0]] != [(e.event, e.body) for e in other[0]]


def test_every_kind_of_delivery_is_in_a_small_stream() -> None:
    events, expected = build_stream(10, seed=7)
    kinds = Counter(e.event for e in events)
    for event in ("lead.created", "customer.updated", "task.created", "note.created"):
        assert kinds[event] > 0, event
    statuses = Counter(e.expect_status for e in events)
    assert statuses[200] == expected.duplicates >= 1  # a Zapier retry, always
    assert statuses[400] + statuses[404] == expected.rejected == 3
    assert expected.noop_updates >= 1 and expected.dead_letters == 1
    assert {e.encoding for e in events} == {"json", "form", "raw"}
    assert any(isinstance(e.body, dict) and "delivery_id" not in e.body for e in events)


def test_expected_children_come_from_their_events() -> None:
    events, expected = build_stream(30, seed=2)
    created = {
        e.body["task_id"] for e in events if e.event == "task.created" and isinstance(e.body, dict)
    }
    deleted = {
        e.body["task_id"] for e in events if e.event == "task.deleted" and isinstance(e.body, dict)
    }
    tasks = {tid: t for c in expected.contacts.values() for tid, t in c.tasks.items()}
    assert set(tasks) == created
    assert {tid for tid, t in tasks.items() if t.deleted} == deleted
    assert all(c.phone.startswith("+1") and c.tags >= {"lead"} for c in expected.contacts.values())


def test_a_stale_update_is_older_than_the_customer_it_would_overwrite() -> None:
    events, expected = build_stream(5, seed=1)
    stale = [
        e
        for e in events
        if isinstance(e.body, dict) and e.body.get("last_name") == "Stale-Overwrite"
    ]
    assert stale, "customer 3 always gets a late, older update"
    for event in stale:
        assert isinstance(event.body, dict)
        assert expected.contacts[event.body["customer_id"]].last_name != "Stale-Overwrite"
