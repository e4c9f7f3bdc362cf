"""claim / complete / retry / dead_letter / renew: leases, fairness, fencing, concurrency."""

from __future__ import annotations

import threading
from collections import Counter

import sqlalchemy as sa

from ghlsync._clock import FakeClock
from ghlsync.engine import (
    AuditEntry,
    claim,
    complete,
    dead_letter,
    locations_with_work,
    renew,
    retry,
)
from ghlsync.store._tables_engine import audit_log, dead_letters, work_items
from tests._engine_kit import count, delivery, send, work_row


def _bulk(engine: sa.Engine, location: str, n: int, start: float = 0.0) -> None:
    """n pending contacts for `location`, inserted directly (fast), oldest first."""
    rows = [
        {
            "location_id": location,
            "entity_type": "contact",
            "source_id": f"{location}-{i}",
            "status": "pending",
            "event": "customer.updated",
            "payload": "{}",
            "available_at": start + i,
            "created_at": start + i,
            "updated_at": start + i,
        }
        for i in range(n)
    ]
    with engine.begin() as conn:
        conn.execute(sa.insert(work_items), rows)


def test_claim_returns_the_snapshot_and_leases_it(
    engine_store: sa.Engine, engine_clock: FakeClock
) -> None:
    send(engine_store, delivery(first_name="Ann", updated_at=5.0))
    (item,) = claim(engine_store, "w1", None, 10, 30, clock=engine_clock)
    assert (item.location_id, item.entity_type, item.source_id) == ("loc1", "contact", "c1")
    assert item.payload == {"customer_id": "c1", "first_name": "Ann"}
    assert (item.generation, item.attempts, item.event) == (1, 1, "customer.updated")
    assert item.events == ("customer.updated",)
    assert item.lease_expires_at == engine_clock.now() + 30
    row = work_row(engine_store, "c1")
    assert (row["status"], row["lease_owner"]) == ("leased", "w1")
    assert claim(engine_store, "w2", None, 10, 30, clock=engine_clock) == []


def test_complete_marks_done_when_the_generation_is_unchanged(
    engine_store: sa.Engine, engine_clock: FakeClock
) -> None:
    send(engine_store, delivery())
    (item,) = claim(engine_store, "w1", None, 10, 30, clock=engine_clock)
    assert complete(
        engine_store, item, [AuditEntry("updated", ghl_id="g1", calls=1)], clock=engine_clock
    )
    row = work_row(engine_store, "c1")
    assert (row["status"], row["done_generation"], row["attempts"]) == ("done", 1, 0)
    assert row["lease_token"] is None
    with engine_store.connect() as conn:
        line = conn.execute(sa.select(audit_log)).one()
    assert (line.action, line.ghl_id, line.calls, line.source_id) == ("updated", "g1", 1, "c1")


def test_a_newer_delivery_during_the_lease_sends_it_back_to_pending(
    engine_store: sa.Engine, engine_clock: FakeClock
) -> None:
    send(engine_store, delivery(first_name="Ann"))
    (item,) = claim(engine_store, "w1", None, 10, 30, clock=engine_clock)
    send(engine_store, delivery(first_name="Anna"))
    assert complete(engine_store, item, clock=engine_clock)
    assert work_row(engine_store, "c1")["status"] == "pending"
    (again,) = claim(engine_store, "w1", None, 10, 30, clock=engine_clock)
    assert again.generation == 2 and again.payload["first_name"] == "Anna"


def test_an_expired_lease_is_taken_over_and_the_old_owner_is_fenced(
    engine_store: sa.Engine, engine_clock: FakeClock
) -> None:
    send(engine_store, delivery())
    (dead_worker,) = claim(engine_store, "w1", None, 10, 30, clock=engine_clock)
    engine_clock.advance(29)
    assert claim(engine_store, "w2", None, 10, 30, clock=engine_clock) == []
    engine_clock.advance(2)
    (taken,) = claim(engine_store, "w2", None, 10, 30, clock=engine_clock)
    assert taken.id == dead_worker.id and taken.attempts == 2  # the lost run counted
    assert not complete(engine_store, dead_worker, clock=engine_clock)
    assert not retry(engine_store, dead_worker, "late", 1, clock=engine_clock)
    assert not dead_letter(engine_store, dead_worker, "late", "X", clock=engine_clock)
    assert work_row(engine_store, "c1")["lease_owner"] == "w2"
    assert complete(engine_store, taken, clock=engine_clock)


def test_renew_extends_the_lease(engine_store: sa.Engine, engine_clock: FakeClock) -> None:
    send(engine_store, delivery())
    (item,) = claim(engine_store, "w1", None, 10, 30, clock=engine_clock)
    engine_clock.advance(25)
    renewed = renew(engine_store, item, 30, clock=engine_clock)
    assert renewed is not None and renewed.lease_expires_at == engine_clock.now() + 30
    engine_clock.advance(10)
    assert claim(engine_store, "w2", None, 10, 30, clock=engine_clock) == []
    assert complete(engine_store, renewed, clock=engine_clock)


def test_retry_waits_and_counts_attempts_but_not_for_429(
    engine_store: sa.Engine, engine_clock: FakeClock
) -> None:
    send(engine_store, delivery())
    (item,) = claim(engine_store, "w1", None, 10, 30, clock=engine_clock)
    assert retry(engine_store, item, "502 from GHL", 5.0, clock=engine_clock)
    row = work_row(engine_store, "c1")
    assert (row["status"], row["attempts"], row["last_error"]) == ("pending", 1, "502 from GHL")
    assert claim(engine_store, "w1", None, 10, 30, clock=engine_clock) == []
    engine_clock.advance(5)
    (second,) = claim(engine_store, "w1", None, 10, 30, clock=engine_clock)
    assert second.attempts == 2
    assert retry(engine_store, second, "429", 1.0, count_attempt=False, clock=engine_clock)
    assert work_row(engine_store, "c1")["attempts"] == 1


def test_dead_letter_parks_the_item_with_its_reason(
    engine_store: sa.Engine, engine_clock: FakeClock
) -> None:
    send(engine_store, delivery(email="nope"))
    (item,) = claim(engine_store, "w1", None, 10, 30, clock=engine_clock)
    reason = "GHL rejected the contact: 422 email must be an email (trace abc)"
    assert dead_letter(
        engine_store, item, reason, "UnprocessableError", [AuditEntry("dead")], clock=engine_clock
    )
    row = work_row(engine_store, "c1")
    assert (row["status"], row["last_error"]) == ("dead", reason)
    with engine_store.connect() as conn:
        parked = conn.execute(sa.select(dead_letters)).one()
    assert (parked.reason, parked.error_class, parked.attempts) == (reason, "UnprocessableError", 1)
    assert parked.work_id == item.id and parked.replayed_at is None
    assert claim(engine_store, "w1", None, 10, 30, clock=engine_clock) == []
    send(engine_store, delivery(email="ok@example.com"))  # fixed data revives it, attempts afresh
    (revived,) = claim(engine_store, "w1", None, 10, 30, clock=engine_clock)
    assert revived.attempts == 1 and revived.payload["email"] == "ok@example.com"


def test_dead_letter_with_newer_data_requeues_instead(
    engine_store: sa.Engine, engine_clock: FakeClock
) -> None:
    send(engine_store, delivery(email="nope"))
    (item,) = claim(engine_store, "w1", None, 10, 30, clock=engine_clock)
    send(engine_store, delivery(email="ok@example.com"))
    assert not dead_letter(
        engine_store, item, "bad email", "UnprocessableError", clock=engine_clock
    )
    assert count(engine_store, dead_letters) == 0
    row = work_row(engine_store, "c1")
    assert (row["status"], row["attempts"], row["last_error"]) == ("pending", 0, "bad email")


def test_fairness_every_quiet_location_comes_before_a_backlog(
    engine_store: sa.Engine, engine_clock: FakeClock
) -> None:
    _bulk(engine_store, "busy", 1000, start=0.0)  # older than everything else
    for i in range(10):
        _bulk(engine_store, f"quiet{i}", 1, start=5000.0 + i)
    first = claim(engine_store, "w1", None, 11, 60, clock=engine_clock)
    assert Counter(c.location_id for c in first) == Counter(
        {"busy": 1, **{f"quiet{i}": 1 for i in range(10)}}
    )
    assert first[0].location_id == "busy"  # within one turn, the oldest item first


def test_fairness_with_small_batches(engine_store: sa.Engine, engine_clock: FakeClock) -> None:
    _bulk(engine_store, "busy", 1000, start=0.0)
    for i in range(10):
        _bulk(engine_store, f"quiet{i}", 1, start=5000.0 + i)
    batches = [claim(engine_store, "w1", None, 4, 60, clock=engine_clock) for _ in range(4)]
    # The backlog's item in flight counts as its turn: every quiet location goes before the
    # backlog gets a second slot; then the backlog has the slots to itself.
    assert [[c.location_id for c in batch] for batch in batches] == [
        ["busy", "quiet0", "quiet1", "quiet2"],
        ["quiet3", "quiet4", "quiet5", "quiet6"],
        ["quiet7", "quiet8", "quiet9", "busy"],
        ["busy", "busy", "busy", "busy"],
    ]


def test_one_item_claims_rotate_across_locations(
    engine_store: sa.Engine, engine_clock: FakeClock
) -> None:
    # A worker refills one freed slot at a time; the oldest backlog must not take them all.
    _bulk(engine_store, "old", 50, start=0.0)
    _bulk(engine_store, "new", 50, start=1000.0)
    taken = [claim(engine_store, "w1", None, 1, 60, clock=engine_clock) for _ in range(6)]
    assert [c.location_id for (c,) in taken] == ["old", "new"] * 3


def test_a_single_location_fills_the_whole_batch(
    engine_store: sa.Engine, engine_clock: FakeClock
) -> None:
    _bulk(engine_store, "only", 30)
    batch = claim(engine_store, "w1", None, 25, 60, clock=engine_clock)
    assert len(batch) == 25
    assert [c.source_id for c in batch] == [f"only-{i}" for i in range(25)]  # oldest first


def test_claim_only_takes_locations_with_budget(
    engine_store: sa.Engine, engine_clock: FakeClock
) -> None:
    _bulk(engine_store, "a", 3)
    _bulk(engine_store, "b", 3)
    assert locations_with_work(engine_store, clock=engine_clock) == ["a", "b"]
    batch = claim(engine_store, "w1", ["b"], 10, 60, clock=engine_clock)
    assert {c.location_id for c in batch} == {"b"} and len(batch) == 3
    assert claim(engine_store, "w1", [], 10, 60, clock=engine_clock) == []
    assert locations_with_work(engine_store, clock=engine_clock) == ["a"]


def test_two_claimers_in_threads_never_get_the_same_item(
    engine_store: sa.Engine, engine_clock: FakeClock
) -> None:
    for location in ("a", "b", "c"):
        _bulk(engine_store, location, 40)
    got: dict[str, list[int]] = {"w1": [], "w2": []}

    def run(worker: str) -> None:
        while batch := claim(engine_store, worker, None, 5, 60, clock=engine_clock):
            got[worker].extend(c.id for c in batch)

    threads = [threading.Thread(target=run, args=(name,)) for name in got]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    everything = got["w1"] + got["w2"]
    assert len(everything) == 120
    assert len(set(everything)) == 120
    assert count(engine_store, work_items) == 120


def test_one_busy_location_among_many_idle_ones_fills_the_batch(
    engine_store: sa.Engine, engine_clock: FakeClock
) -> None:
    _bulk(engine_store, "busy", 20)
    idle = [f"idle{i}" for i in range(50)]
    for location in idle:  # only work that is not due yet (backing off)
        _bulk(engine_store, location, 1, start=engine_clock.now() + 3600)
    batch = claim(engine_store, "w1", ["busy", *idle], 8, 60, clock=engine_clock)
    assert [c.source_id for c in batch] == [f"busy-{i}" for i in range(8)]
    assert len(claim(engine_store, "w1", None, 8, 60, clock=engine_clock)) == 8
