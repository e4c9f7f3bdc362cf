"""The worker: map → sync_event → complete, and every failure path (with a fake sync_event)."""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
import structlog

from ghlsync._clock import FakeClock
from ghlsync.engine import Worker, accept, claim
from ghlsync.engine._worker import BUDGET_TTL
from ghlsync.engine.flows.to_ghl._model import EntityOutcome, FlowContext, ParentNotSyncedError
from ghlsync.ghl._errors import (
    NotFoundError,
    OutcomeUnknownError,
    RateLimitedError,
    ServerError,
    UnprocessableError,
)
from ghlsync.ghl._seams import Budget
from ghlsync.mapping import AppConfig, ConfigError, MappedEvent, Mapper
from ghlsync.server._commit import LoopCommitter
from ghlsync.store import create_engine, migrate
from ghlsync.store._tables_engine import audit_log, dead_letters
from tests._engine_kit import delivery, send, work_row


class FakeFlows:
    """A scripted `sync_event`: per source id, a list of errors to raise before succeeding."""

    def __init__(self) -> None:
        self.script: dict[str, list[BaseException]] = defaultdict(list)
        self.calls: list[tuple[str, str, str]] = []  # (location, event, source id)

    async def __call__(self, ctx: FlowContext, mapped: MappedEvent) -> list[EntityOutcome]:
        entity = mapped.primary
        self.calls.append((ctx.location_id, mapped.event, entity.source_id))
        if self.script[entity.source_id]:
            raise self.script[entity.source_id].pop(0)
        action = "completed" if entity.action == "complete" else "updated"
        return [EntityOutcome(entity.type, entity.source_id, action, "ghl-" + entity.source_id, 1)]


class FakeLimiter:
    """Budget per location: the ones in `paused` have none until `paused_until`."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.paused: dict[str, float] = {}

        self.asked: list[str] = []

    async def has_budget(self, key: str) -> bool:
        self.asked.append(key)
        return self.paused.get(key, 0.0) <= self.clock.now()

    async def budget(self, key: str) -> Budget:
        return Budget(key, 100, 10_000, None, 200_000, None, self.paused.get(key, 0.0), 0)

    async def acquire(self, key: str) -> None:
        return None

    async def observe(self, key: str, status: int, headers: Mapping[str, str]) -> None:
        return None


def _worker(engine: sa.Engine, clock: FakeClock, flows: FakeFlows, **kwargs: Any) -> Worker:
    config = AppConfig.default()
    return Worker(
        engine,
        object(),
        Mapper(config, clock=clock),
        config,
        clock=clock,
        sync_event=flows,
        worker_id="w1",
        rng=random.Random(7),
        **kwargs,
    )


def _unprocessable() -> UnprocessableError:
    return UnprocessableError(
        status=422,
        body={"message": ["email must be an email"], "traceId": "abc"},
        method="POST",
        path="/contacts/upsert",
    )


def _audit(engine: sa.Engine) -> list[tuple[str, str, str | None]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(audit_log).order_by(audit_log.c.id)).all()
    return [(row.action, row.source_id, row.detail) for row in rows]


def _dead(engine: sa.Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(dead_letters)).all())


async def test_run_once_syncs_and_completes(
    engine_store: sa.Engine, engine_clock: FakeClock
) -> None:
    flows = FakeFlows()
    send(engine_store, delivery("c1", email="a@example.com"), delivery("c2"))
    assert await _worker(engine_store, engine_clock, flows).run_once() == 2
    assert sorted(flows.calls) == [
        ("loc1", "customer.updated", "c1"),
        ("loc1", "customer.updated", "c2"),
    ]
    assert work_row(engine_store, "c1")["status"] == "done"
    assert ("updated", "c1", None) in _audit(engine_store)


async def test_each_item_logs_with_its_own_fields_and_none_leak_out(
    engine_store: sa.Engine, engine_clock: FakeClock
) -> None:
    seen: dict[str, dict[str, Any]] = {}

    class Recording(FakeFlows):
        async def __call__(self, ctx: FlowContext, mapped: MappedEvent) -> list[EntityOutcome]:
            await asyncio.sleep(0)  # the other item's task runs meanwhile
            seen[mapped.primary.source_id] = structlog.contextvars.get_contextvars()
            return await super().__call__(ctx, mapped)

    send(engine_store, delivery("c1"), delivery("c2"))
    structlog.contextvars.bind_contextvars(caller="kept")
    try:
        assert await _worker(engine_store, engine_clock, Recording()).run_once() == 2
        assert structlog.contextvars.get_contextvars() == {"caller": "kept"}
    finally:
        structlog.contextvars.clear_contextvars()
    for source_id in ("c1", "c2"):
        fields = seen[source_id]
        assert (fields["entity_id"], fields["entity"], fields["caller"]) == (
            source_id,
            "contact",
            "kept",
        )
        assert fields["work_id"] == work_row(engine_store, source_id)["id"]


async def test_every_pending_event_runs_once_in_order(
    engine_store: sa.Engine, engine_clock: FakeClock
) -> None:
    flows = FakeFlows()
    send(
        engine_store,
        delivery("t1", "task.created", entity_type="task", task_title="Call"),
        delivery("t1", "task.completed", entity_type="task"),
        delivery("t1", "task.updated", entity_type="task", task_title="Call back"),
    )
    await _worker(engine_store, engine_clock, flows).run_once()
    assert [event for _, event, _ in flows.calls] == [
        "task.created",
        "task.updated",
        "task.completed",
    ]
    assert work_row(engine_store, "t1")["status"] == "done"


async def test_fatal_error_dead_letters_with_a_readable_reason(
    engine_store: sa.Engine, engine_clock: FakeClock
) -> None:
    flows = FakeFlows()
    flows.script["c1"] = [_unprocessable()]
    send(engine_store, delivery("c1"))
    await _worker(engine_store, engine_clock, flows).run_once()
    (parked,) = _dead(engine_store)
    assert parked.reason == "GHL rejected the contact: 422 email must be an email (trace abc)"
    assert parked.error_class == "UnprocessableError"
    assert work_row(engine_store, "c1")["status"] == "dead"
    assert _audit(engine_store)[-1][0] == "dead"


async def test_mapping_error_dead_letters_with_the_mapping_message(
    engine_store: sa.Engine, engine_clock: FakeClock
) -> None:
    flows = FakeFlows()
    send(engine_store, delivery("c1", email="not-an-email"))
    await _worker(engine_store, engine_clock, flows).run_once()
    (parked,) = _dead(engine_store)
    assert parked.reason == (
        "cannot map customer.updated for the contact: email: 'not-an-email' is not an email address"
    )
    assert parked.error_class == "MappingError"
    assert flows.calls == []


async def test_retriable_errors_back_off_then_dead_letter_after_max_attempts(
    engine_store: sa.Engine, engine_clock: FakeClock
) -> None:
    flows = FakeFlows()
    flows.script["c1"] = [ServerError(status=502, body={"message": "Bad gateway"})] * 10
    send(engine_store, delivery("c1"))
    worker = _worker(engine_store, engine_clock, flows)
    worker.max_attempts = 3
    for attempt in (1, 2):
        assert await worker.run_once() == 1
        row = work_row(engine_store, "c1")
        assert (row["status"], row["attempts"]) == ("pending", attempt)
        assert row["available_at"] > engine_clock.now()  # backing off
        assert await worker.run_once() == 0
        engine_clock.advance(120)
    assert await worker.run_once() == 1
    (parked,) = _dead(engine_store)
    assert parked.reason == "gave up after 3 attempts: GHL failed on the contact: 502 Bad gateway"
    assert parked.attempts == 3
    assert [a for a, _, _ in _audit(engine_store)] == ["retry", "retry", "dead"]


async def test_outcome_unknown_is_retried_not_dead_lettered(
    engine_store: sa.Engine, engine_clock: FakeClock
) -> None:
    flows = FakeFlows()
    flows.script["c1"] = [OutcomeUnknownError("read timeout")]
    send(engine_store, delivery("c1"))
    worker = _worker(engine_store, engine_clock, flows)
    await worker.run_once()
    assert work_row(engine_store, "c1")["last_error"] == (
        "no answer from GHL after sending the contact: read timeout"
    )
    engine_clock.advance(120)
    await worker.run_once()
    assert work_row(engine_store, "c1")["status"] == "done"


async def test_a_429_is_not_counted_and_waits_for_the_pause(
    engine_store: sa.Engine, engine_clock: FakeClock
) -> None:
    limiter = FakeLimiter(engine_clock)

    async def throttled(ctx: FlowContext, mapped: MappedEvent) -> list[EntityOutcome]:
        limiter.paused[ctx.location_id] = engine_clock.now() + 10  # as the real limiter does
        raise RateLimitedError(status=429, body={"message": "Too many"})

    config = AppConfig.default()
    worker = Worker(
        engine_store,
        object(),
        Mapper(config),
        config,
        clock=engine_clock,
        sync_event=throttled,
        limiter=limiter,
    )
    worker.max_attempts = 2
    send(engine_store, delivery("c1"))
    for _ in range(5):  # far more 429s than max_attempts
        assert await worker.run_once() == 1
        row = work_row(engine_store, "c1")
        assert (row["status"], row["attempts"]) == ("pending", 0)
        assert row["available_at"] == engine_clock.now() + 10  # exactly the pause
        assert await worker.run_once() == 0  # paused: not even claimed
        engine_clock.advance(10)
    assert _dead(engine_store) == []
    assert {a for a, _, _ in _audit(engine_store)} == {"throttled"}


async def test_only_locations_with_budget_are_claimed(
    engine_store: sa.Engine, engine_clock: FakeClock
) -> None:
    flows = FakeFlows()
    limiter = FakeLimiter(engine_clock)
    limiter.paused["loc1"] = engine_clock.now() + 60
    send(engine_store, delivery("c1", location="loc1"), delivery("c2", location="loc2"))
    assert await _worker(engine_store, engine_clock, flows, limiter=limiter).run_once() == 1
    assert flows.calls == [("loc2", "customer.updated", "c2")]
    assert work_row(engine_store, "c1", "loc1")["status"] == "pending"


async def test_a_location_is_claimed_from_only_with_a_budget_answer_younger_than_its_ttl(
    engine_store: sa.Engine, engine_clock: FakeClock
) -> None:
    # The locations with work come with each claim and serve the next one, so a location the
    # last claim did not see (new, or without work then) is asked about before its first item
    # is claimed, and so is one whose answer expired meanwhile.
    flows = FakeFlows()
    limiter = FakeLimiter(engine_clock)
    worker = _worker(engine_store, engine_clock, flows, limiter=limiter)
    send(engine_store, delivery("c1", location="loc1"), delivery("c2", location="loc2"))
    assert await worker.run_once() == 2
    assert sorted(limiter.asked) == ["loc1", "loc2"]
    limiter.asked.clear()
    send(engine_store, delivery("c3", location="loc1"))
    assert await worker.run_once() == 1  # loc1's answer is fresh: not asked again
    assert limiter.asked == []
    engine_clock.advance(BUDGET_TTL + 0.1)
    limiter.paused["loc2"] = engine_clock.now() + 60  # no budget now; the last claim saw no work
    send(engine_store, delivery("c4", location="loc2"), delivery("c5", location="loc1"))
    assert await worker.run_once() == 1
    assert sorted(limiter.asked) == ["loc1", "loc2"]  # both answers had expired
    assert [call[2] for call in flows.calls] == ["c1", "c2", "c3", "c5"]
    assert work_row(engine_store, "c4", "loc2")["status"] == "pending"
    engine_clock.advance(60)
    limiter.paused.clear()
    assert await worker.run_once() == 1
    assert flows.calls[-1] == ("loc2", "customer.updated", "c4")


@pytest.mark.postgres
async def test_on_postgresql_a_claim_is_one_statement_once_its_locations_are_known(
    postgres_url: str, engine_clock: FakeClock
) -> None:
    # The locations with work were a statement of their own before every claim.
    engine = create_engine(postgres_url)
    migrate(engine)
    claims: list[str] = []

    class Traced(psycopg.Cursor[Any]):
        def execute(self, query: Any, *args: Any, **kwargs: Any) -> Any:
            if any(word in str(query) for word in ("RECURSIVE", "picked")):
                claims.append(str(query).split()[0])
            return super().execute(query, *args, **kwargs)

    sa.event.listen(engine, "connect", lambda dbapi, _: setattr(dbapi, "cursor_factory", Traced))
    engine.dispose()  # the connections migrate opened are not traced
    try:
        worker = _worker(engine, engine_clock, FakeFlows(), limiter=FakeLimiter(engine_clock))
        send(engine, delivery("c1", location="loc1"))
        assert await worker.run_once() == 1
        assert len(claims) == 2  # loc1 was new: seen by the first claim, taken by a second
        send(engine, delivery("c2", location="loc1"), delivery("c3", location="loc1"))
        assert await worker.run_once() == 2
        assert len(claims) == 3
    finally:
        engine.dispose()


async def test_a_paused_location_is_not_claimed_from_without_a_limiter(
    engine_store: sa.Engine, engine_clock: FakeClock
) -> None:
    flows = FakeFlows()
    flows.script["c1"] = [ConfigError(["ghl.calendar_id: missing"])]
    worker = _worker(engine_store, engine_clock, flows)
    send(engine_store, delivery("c1", location="loc1"))
    assert await worker.run_once() == 1  # a configuration error: loc1 is paused
    send(engine_store, delivery("c2", location="loc1"), delivery("c3", location="loc2"))
    engine_clock.advance(1)
    for _ in range(3):
        await worker.run_once()
    assert [call[2] for call in flows.calls] == ["c1", "c3"]


async def test_skippable_error_completes_with_an_audit_note(
    engine_store: sa.Engine, engine_clock: FakeClock
) -> None:
    flows = FakeFlows()
    flows.script["t1"] = [NotFoundError(status=404, body={"message": "Task not found"})]
    send(engine_store, delivery("t1", "task.deleted", entity_type="task"))
    await _worker(engine_store, engine_clock, flows).run_once()
    assert work_row(engine_store, "t1")["status"] == "done"
    assert _audit(engine_store) == [
        ("skipped", "t1", "skipped: GHL answered 404 for the task: Task not found")
    ]


async def test_an_unexpected_exception_never_crashes_the_worker(
    engine_store: sa.Engine, engine_clock: FakeClock
) -> None:
    flows = FakeFlows()
    flows.script["c1"] = [ZeroDivisionError("division by zero")] * 5
    send(engine_store, delivery("c1"), delivery("c2"))
    worker = _worker(engine_store, engine_clock, flows)
    worker.max_attempts = 2
    assert await worker.run_once() == 2
    assert work_row(engine_store, "c2")["status"] == "done"
    assert work_row(engine_store, "c1")["last_error"] == (
        "unexpected error ZeroDivisionError: division by zero"
    )
    engine_clock.advance(120)
    await worker.run_once()
    (parked,) = _dead(engine_store)
    assert parked.error_class == "ZeroDivisionError"
    assert parked.reason.startswith("gave up after 2 attempts: unexpected error")


async def test_a_newer_delivery_during_processing_is_synced_next(
    engine_store: sa.Engine, engine_clock: FakeClock
) -> None:
    seen: list[dict[str, Any]] = []

    async def flows(ctx: FlowContext, mapped: MappedEvent) -> list[EntityOutcome]:
        seen.append(dict(mapped.primary.body))
        if len(seen) == 1:  # a newer delivery lands while the first one is in flight
            send(engine_store, delivery("c1", first_name="Anna"))
        return []

    config = AppConfig.default()
    worker = Worker(
        engine_store, object(), Mapper(config), config, clock=engine_clock, sync_event=flows
    )
    send(engine_store, delivery("c1", first_name="Ann"))
    await worker.run_once()
    assert work_row(engine_store, "c1")["status"] == "pending"
    await worker.run_once()
    assert [body["firstName"] for body in seen] == ["Ann", "Anna"]
    assert work_row(engine_store, "c1")["status"] == "done"


async def test_an_item_whose_worker_keeps_dying_is_dead_lettered(
    engine_store: sa.Engine, engine_clock: FakeClock
) -> None:
    flows = FakeFlows()
    send(engine_store, delivery("c1"))
    worker = _worker(engine_store, engine_clock, flows)
    for _ in range(worker.max_attempts):  # claimed, then the worker is killed each time
        assert claim(engine_store, "doomed", None, 1, 30, clock=engine_clock)
        engine_clock.advance(31)
    await worker.run_once()
    (parked,) = _dead(engine_store)
    assert "worker stopped (crash or kill)" in parked.reason
    assert flows.calls == []


def _no_parent(customer: str | None = "c-parent") -> ParentNotSyncedError:
    return ParentNotSyncedError(f"customer {customer!r} is not in GHL yet", customer_id=customer)


async def test_a_child_waits_uncounted_while_its_customers_item_is_queued(
    engine_store: sa.Engine, engine_clock: FakeClock
) -> None:
    """The customer's item is leased by a worker that died (or waits on a location out of
    budget): its task must not run out of attempts meanwhile (CI lost tasks that way)."""
    send(engine_store, delivery("c-parent", email="p@example.com"))
    (held,) = claim(engine_store, "w-dead", None, 1, 1000, clock=engine_clock)
    send(engine_store, delivery("t1", "task.created", entity_type="task", task_title="Call"))
    flows = FakeFlows()
    flows.script["t1"] = [_no_parent()] * 10
    worker = _worker(engine_store, engine_clock, flows)
    worker.max_attempts = 3
    for _ in range(8):  # far past max_attempts
        assert await worker.run_once() == 1
        row = work_row(engine_store, "t1")
        assert (row["status"], row["attempts"]) == ("pending", 0)  # given back every time
        wait = row["available_at"] - engine_clock.now()
        # Looked at again when the customer's lease would end (capped), with a little jitter.
        expected = min(held.lease_expires_at - engine_clock.now(), 30.0)
        assert expected + 0.5 <= wait <= expected + 1.0
        engine_clock.advance(wait)
    assert _dead(engine_store) == []
    actions = [(a, s, d) for a, s, d in _audit(engine_store) if s == "t1"]
    assert {a for a, _, _ in actions} == {"waiting"}
    assert "still queued" in str(actions[0][2])
    flows.script["t1"] = []  # the customer was synced
    await worker.run_once()
    assert work_row(engine_store, "t1")["status"] == "done"


async def test_a_child_whose_customer_is_not_queued_runs_out_of_attempts(
    engine_store: sa.Engine, engine_clock: FakeClock
) -> None:
    """No queued item will bring the customer (never sent, or its own item is settled): the
    retries count and end in a dead letter that names the customer, as before."""
    send(engine_store, delivery("c-parent", email="p@example.com"))
    await _worker(engine_store, engine_clock, FakeFlows()).run_once()  # settled: done
    send(engine_store, delivery("t1", "task.created", entity_type="task", task_title="Call"))
    send(engine_store, delivery("t2", "task.created", entity_type="task", task_title="Call"))
    flows = FakeFlows()
    flows.script["t1"] = [_no_parent()] * 10
    flows.script["t2"] = [_no_parent(None)] * 10  # the error names no customer
    worker = _worker(engine_store, engine_clock, flows)
    worker.max_attempts = 2
    for _ in range(2):
        await worker.run_once()
        engine_clock.advance(120)
    assert sorted(parked.source_id for parked in _dead(engine_store)) == ["t1", "t2"]
    assert all("gave up after 2 attempts" in parked.reason for parked in _dead(engine_store))


async def test_run_processes_until_stopped_and_finishes_in_flight(
    engine_store: sa.Engine, engine_clock: FakeClock
) -> None:
    stop = asyncio.Event()
    release = asyncio.Event()
    all_started = asyncio.Event()
    started: list[str] = []

    async def flows(ctx: FlowContext, mapped: MappedEvent) -> list[EntityOutcome]:
        started.append(mapped.primary.source_id)
        if len(started) == 3:
            stop.set()  # ask for a stop while items are in flight
            all_started.set()
        await release.wait()
        return []

    config = AppConfig.default()
    worker = Worker(
        engine_store,
        object(),
        Mapper(config),
        config,
        clock=engine_clock,
        sync_event=flows,
        concurrency=3,
    )
    send(engine_store, *(delivery(f"c{i}") for i in range(5)))
    task = asyncio.create_task(worker.run(stop))
    await asyncio.wait_for(all_started.wait(), timeout=10)
    release.set()
    await asyncio.wait_for(task, timeout=10)
    statuses = [work_row(engine_store, f"c{i}")["status"] for i in range(5)]
    assert statuses.count("done") == 3  # the in-flight ones finished
    assert statuses.count("pending") == 2  # nothing new was claimed after the stop
    assert worker.last_heartbeat == engine_clock.now()


async def test_run_drains_a_backlog(engine_store: sa.Engine, engine_clock: FakeClock) -> None:
    stop = asyncio.Event()
    synced: list[str] = []

    async def flows(ctx: FlowContext, mapped: MappedEvent) -> list[EntityOutcome]:
        synced.append(mapped.primary.source_id)
        if len(synced) == 7:
            stop.set()
        return []

    config = AppConfig.default()
    worker = Worker(
        engine_store,
        object(),
        Mapper(config),
        config,
        clock=engine_clock,
        sync_event=flows,
        concurrency=2,
    )
    send(engine_store, *(delivery(f"c{i}", location=f"loc{i % 3}") for i in range(7)))
    await asyncio.wait_for(worker.run(stop), timeout=20)
    assert sorted(synced) == [f"c{i}" for i in range(7)]
    statuses = {work_row(engine_store, f"c{i}", f"loc{i % 3}")["status"] for i in range(7)}
    assert statuses == {"done"}


async def test_the_lease_is_renewed_while_an_item_is_in_flight(engine_store: sa.Engine) -> None:
    started, release = asyncio.Event(), asyncio.Event()

    async def slow(ctx: FlowContext, mapped: MappedEvent) -> list[EntityOutcome]:
        started.set()
        await release.wait()
        return []

    config = AppConfig.default()
    worker = Worker(engine_store, object(), Mapper(config), config, sync_event=slow)
    worker.lease_seconds = 0.6  # real time here: renewal runs on the event loop's clock
    send(engine_store, delivery("c1"))
    task = asyncio.create_task(worker.run_once())
    await asyncio.wait_for(started.wait(), timeout=10)
    await asyncio.sleep(1.5)  # 2.5 leases: without renewal another worker could take it
    assert await asyncio.to_thread(claim, engine_store, "thief", None, 10, 30) == []
    release.set()
    await asyncio.wait_for(task, timeout=10)
    assert work_row(engine_store, "c1")["status"] == "done"


async def test_accepted_work_wakes_an_idle_worker_of_the_same_engine(
    engine_store: sa.Engine, engine_clock: FakeClock
) -> None:
    synced = asyncio.Event()

    async def flows(ctx: FlowContext, mapped: MappedEvent) -> list[EntityOutcome]:
        synced.set()
        return []

    config = AppConfig.default()
    worker = Worker(
        engine_store, object(), Mapper(config), config, clock=engine_clock, sync_event=flows
    )
    worker.poll_interval = 3600  # without the wake-up this test would wait an hour
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    await asyncio.sleep(0.05)  # the worker found nothing and went idle
    send(engine_store, delivery("c1"))  # accept on the worker's engine wakes it on checkin
    await asyncio.wait_for(synced.wait(), timeout=10)
    stop.set()
    await asyncio.wait_for(running, timeout=10)
    assert work_row(engine_store, "c1")["status"] == "done"


async def test_wake_claims_new_work_without_waiting_for_the_poll(
    engine_store: sa.Engine, engine_clock: FakeClock
) -> None:
    synced = asyncio.Event()

    async def flows(ctx: FlowContext, mapped: MappedEvent) -> list[EntityOutcome]:
        synced.set()
        return []

    config = AppConfig.default()
    worker = Worker(
        engine_store, object(), Mapper(config), config, clock=engine_clock, sync_event=flows
    )
    worker.poll_interval = 3600
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    await asyncio.sleep(0.05)
    other = create_engine(engine_store.url.render_as_string(hide_password=False))
    send(other, delivery("c1"))  # another engine: no checkin hook, so wake by hand
    other.dispose()
    worker.wake()
    await asyncio.wait_for(synced.wait(), timeout=10)
    stop.set()
    await asyncio.wait_for(running, timeout=10)


async def test_deliveries_the_loop_commits_wake_the_worker(sqlite_url: str) -> None:
    """`ghlsync serve` on SQLite: the receiver commits on the event loop's own connection,
    which never goes back to the pool (no checkin); its commit wakes the worker all the same,
    so a delivery waits for no poll (the worker here would poll once an hour)."""
    engine = create_engine(sqlite_url)
    migrate(engine)
    synced = asyncio.Event()

    async def flows(ctx: FlowContext, mapped: MappedEvent) -> list[EntityOutcome]:
        synced.set()
        return []

    config = AppConfig.default()
    worker = Worker(engine, object(), Mapper(config), config, sync_event=flows)
    worker.poll_interval = 3600
    committer = LoopCommitter(engine, accept, on_accepted=worker.wake)
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    await asyncio.sleep(0.05)  # the worker found nothing and went idle
    assert await committer.submit(delivery("c1")) is True
    await asyncio.wait_for(synced.wait(), timeout=10)
    stop.set()
    await asyncio.wait_for(running, timeout=10)
    await asyncio.to_thread(committer.close)
    assert work_row(engine, "c1")["status"] == "done"
    engine.dispose()


async def test_the_reason_names_the_event_that_failed(
    engine_store: sa.Engine, engine_clock: FakeClock
) -> None:
    flows = FakeFlows()
    send(
        engine_store,
        delivery("c1", "lead.created", email="ann@example.com"),
        delivery("c1", "customer.made_up"),  # not a configured event
    )
    await _worker(engine_store, engine_clock, flows).run_once()
    (parked,) = _dead(engine_store)
    assert parked.reason.startswith("cannot map customer.made_up for the contact: event:")
    assert parked.error_class == "UnknownEventError"
    assert flows.calls == [("loc1", "lead.created", "c1")]  # the first event did run
