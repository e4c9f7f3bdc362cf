"""accept(): dedupe, merging and ordering of deliveries into one work row per entity."""

from __future__ import annotations

import json
import threading
from typing import Any

import sqlalchemy as sa

from ghlsync._clock import FakeClock
from ghlsync.engine import accept, claim, complete, delivery_key
from ghlsync.store import begin_immediate
from ghlsync.store._tables_engine import inbox, work_items
from tests._engine_kit import count, delivery, send, work_row


def test_same_delivery_twice_is_one_inbox_row_and_one_generation(engine_store: sa.Engine) -> None:
    first = delivery(delivery_id="d-1", email="a@example.com")
    assert send(engine_store, first, first) == [True, False]
    assert count(engine_store, inbox) == 1
    row = work_row(engine_store, "c1")
    assert row["generation"] == 1
    assert row["status"] == "pending"


def test_without_delivery_id_the_body_hash_dedupes(engine_store: sa.Engine) -> None:
    a = delivery(email="a@example.com")
    same = delivery(email="a@example.com", received_at=1_700_000_050.0)
    other = delivery(email="b@example.com")
    assert send(engine_store, a, same, other) == [True, False, True]
    assert delivery_key(a) == delivery_key(same) != delivery_key(other)
    assert delivery_key(a).startswith("sha256:")
    assert work_row(engine_store, "c1")["generation"] == 2


def test_duplicate_changes_nothing_even_after_the_row_moved_on(engine_store: sa.Engine) -> None:
    first = delivery(delivery_id="d-1", first_name="Ann")
    send(engine_store, first, delivery(delivery_id="d-2", first_name="Bea"))
    before = dict(work_row(engine_store, "c1"))
    assert send(engine_store, first) == [False]
    assert dict(work_row(engine_store, "c1")) == before


def test_inbox_row_points_at_its_work_row(engine_store: sa.Engine) -> None:
    send(engine_store, delivery(delivery_id="d-1"))
    with engine_store.connect() as conn:
        stored = conn.execute(sa.select(inbox)).one()
    assert stored.work_id == work_row(engine_store, "c1")["id"]
    assert json.loads(stored.payload) == {"customer_id": "c1"}


def test_newer_fields_overwrite_and_missing_fields_are_kept(engine_store: sa.Engine) -> None:
    send(
        engine_store,
        delivery(event="customer.created", updated_at=10.0, first_name="Ann", email="a@x.com"),
        delivery(updated_at=20.0, first_name="Anna"),
    )
    row = work_row(engine_store, "c1")
    assert json.loads(row["payload"]) == {
        "customer_id": "c1",
        "first_name": "Anna",
        "email": "a@x.com",
    }
    assert row["source_updated_at"] == 20.0
    assert row["generation"] == 2


def test_an_older_update_never_overwrites_a_newer_one(engine_store: sa.Engine) -> None:
    send(
        engine_store,
        delivery(updated_at=20.0, first_name="Anna"),
        delivery(updated_at=10.0, first_name="Ann", phone="+15555550100"),
    )
    row = work_row(engine_store, "c1")
    payload = json.loads(row["payload"])
    assert payload["first_name"] == "Anna"
    assert payload["phone"] == "+15555550100"  # older data still fills the gaps
    assert row["source_updated_at"] == 20.0


def test_ordering_is_per_field(engine_store: sa.Engine) -> None:
    send(
        engine_store,
        delivery(updated_at=10.0, first_name="Ann", email="old@x.com"),
        delivery(updated_at=20.0, phone="+15555550100"),  # newer, but says nothing of the name
        delivery(updated_at=15.0, first_name="Anna", phone="+15555550199"),  # late
    )
    payload = json.loads(work_row(engine_store, "c1")["payload"])
    assert payload["first_name"] == "Anna"  # 15 is newer than the name's 10
    assert payload["phone"] == "+15555550100"  # 15 is older than the phone's 20
    assert payload["email"] == "old@x.com"


def test_arrival_order_wins_without_timestamps(engine_store: sa.Engine) -> None:
    send(engine_store, delivery(first_name="Ann"), delivery(first_name="Anna"))
    assert json.loads(work_row(engine_store, "c1")["payload"])["first_name"] == "Anna"
    send(engine_store, delivery(updated_at=5.0, first_name="Bo"))
    assert json.loads(work_row(engine_store, "c1")["payload"])["first_name"] == "Bo"


def test_task_completed_after_created_still_completes(engine_store: sa.Engine) -> None:
    send(
        engine_store,
        delivery("t1", "task.created", entity_type="task", task_title="Call"),
        delivery("t1", "task.completed", entity_type="task"),
    )
    row = work_row(engine_store, "t1")
    assert row["event"] == "task.completed"
    assert json.loads(row["events"]) == [["task.created", 0], ["task.completed", 2]]
    assert json.loads(row["payload"])["task_title"] == "Call"


def test_completion_survives_a_later_update_in_the_next_round(
    engine_store: sa.Engine, engine_clock: FakeClock
) -> None:
    send(engine_store, delivery("t1", "task.completed", entity_type="task"))
    (item,) = claim(engine_store, "w1", None, 10, 60, clock=engine_clock)
    assert complete(engine_store, item, clock=engine_clock)
    send(engine_store, delivery("t1", "task.updated", entity_type="task", task_title="Call back"))
    row = work_row(engine_store, "t1")
    assert row["event"] == "task.completed"
    assert json.loads(row["events"]) == [["task.updated", 0], ["task.completed", 2]]


def test_a_delete_wins_over_earlier_and_late_updates(engine_store: sa.Engine) -> None:
    send(
        engine_store,
        delivery(updated_at=10.0, first_name="Ann"),
        delivery(event="customer.deleted", updated_at=20.0),
        delivery(updated_at=15.0, first_name="Late"),  # an old update arriving late
        delivery(first_name="NoStamp"),  # no timestamp: cannot prove it is newer
    )
    row = work_row(engine_store, "c1")
    assert row["event"] == "customer.deleted"
    assert json.loads(row["events"]) == [["customer.deleted", 3]]


def test_a_strictly_newer_event_after_a_delete_takes_over(engine_store: sa.Engine) -> None:
    send(
        engine_store,
        delivery(event="customer.deleted", updated_at=20.0),
        delivery(event="customer.created", updated_at=30.0, first_name="Back"),
    )
    assert work_row(engine_store, "c1")["event"] == "customer.created"


def test_distinct_upsert_events_each_run_once(engine_store: sa.Engine) -> None:
    send(
        engine_store,
        delivery(event="lead.created", delivery_id="1"),
        delivery(event="customer.updated", delivery_id="2"),
        delivery(event="deal.stage_changed", delivery_id="3"),
        delivery(event="customer.updated", delivery_id="4"),
    )
    row = work_row(engine_store, "c1")
    assert [name for name, _ in json.loads(row["events"])] == [
        "lead.created",
        "deal.stage_changed",
        "customer.updated",
    ]
    assert row["event"] == "customer.updated"
    assert row["generation"] == 4


def test_configured_action_decides_the_rank(engine_store: sa.Engine) -> None:
    send(
        engine_store,
        delivery(event="job.closed", action="delete"),
        delivery(event="customer.updated", first_name="x"),
    )
    assert work_row(engine_store, "c1")["event"] == "job.closed"


def test_a_leased_row_stays_leased_and_goes_back_to_pending(
    engine_store: sa.Engine, engine_clock: FakeClock
) -> None:
    send(engine_store, delivery(first_name="Ann"))
    (item,) = claim(engine_store, "w1", None, 10, 60, clock=engine_clock)
    send(engine_store, delivery(first_name="Anna"))
    assert work_row(engine_store, "c1")["status"] == "leased"
    assert claim(engine_store, "w2", None, 10, 60, clock=engine_clock) == []
    assert complete(engine_store, item, clock=engine_clock)
    row = work_row(engine_store, "c1")
    assert row["status"] == "pending"  # the newer delivery still has to be synced
    assert row["done_generation"] == 1 and row["generation"] == 2


def test_concurrent_receivers_lose_no_field(engine_store: sa.Engine) -> None:
    def receive(index: int) -> None:
        for n in range(10):
            fields: dict[str, Any] = {f"f{index}_{n}": n}
            item = delivery(delivery_id=f"{index}-{n}", **fields)
            with begin_immediate(engine_store) as conn:
                accept(conn, item)

    threads = [threading.Thread(target=receive, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    row = work_row(engine_store, "c1")
    assert row["generation"] == 40
    assert len(json.loads(row["payload"])) == 41
    assert count(engine_store, inbox) == 40
    assert count(engine_store, work_items) == 1
