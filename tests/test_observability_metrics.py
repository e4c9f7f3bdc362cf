"""Issue 12 §2: `/metrics` of a real app after real deliveries synced against the sandbox.

The pipeline is the real one (receiver and worker as `ghlsync serve` builds them, the sandbox
over loopback, injected 429s); the counters must agree with what the sandbox logged and what
the audit log says, and the per-location gauges with the store. Counters of the sync are
process-wide, so they are compared as growth over the run; the receiver's and the gauges are
the app's own.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import httpx2
import pytest
import sqlalchemy as sa
from prometheus_client import CollectorRegistry, generate_latest

from ghlsync._clock import FakeClock
from ghlsync.demo import Pipeline, PipelineOptions, Summary, build_stream
from ghlsync.engine.outbox._store import enqueue
from ghlsync.engine.queue._queue import claim, dead_letter_in
from ghlsync.ghl._operations import OPERATIONS, find_operation
from ghlsync.server._queue_metrics import QueueCollector
from ghlsync.store import begin_immediate, create_engine, migrate
from ghlsync.store._tables import ghl_connections
from ghlsync.store._tables_engine import audit_log
from tests._engine_kit import delivery, send
from tests._metrics_kit import Samples, by_label, delta, parse, sync_now, total, value
from tests._twoway_kit import HOOK, TwoWay

# Every label a series may carry: none of them is an id of a contact, record or delivery.
ALLOWED_LABELS = {"operation", "status", "entity", "action", "event", "answer", "outcome"}
ALLOWED_LABELS |= {"reason", "location", "le"}


async def _run(customers: int, seed: int, faults: dict[str, float], url: str) -> dict[str, Any]:
    events, expected = build_stream(customers, seed=seed)
    before = sync_now()
    # A short rate window: the pause after each injected 429 lasts until it ends.
    options = PipelineOptions(database_url=url, faults=faults, interval_ms=200)
    async with Pipeline(options) as pipe:
        answers = await pipe.send(events)
        await pipe.wait_drained()
        summary = await pipe.summarize(events, answers, expected)
        log: list[dict[str, Any]] = await pipe.sandbox_json("/_sandbox/requests")
        async with httpx2.AsyncClient() as http:
            text = (await http.get(f"{pipe.receiver_url}/metrics")).text
        location = pipe.location_id
    return {
        "before": before,
        "after": parse(text),
        "text": text,
        "summary": summary,
        "log": log,
        "location": location,
        "events": events,
    }


def _audit_counts(url: str) -> dict[tuple[str, str], int]:
    """(entity type, action) -> lines of the store's audit log."""
    a = audit_log.c
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            query = sa.select(a.entity_type, a.action, sa.func.count()).group_by(
                a.entity_type, a.action
            )
            return {(entity, action): int(n) for entity, action, n in conn.execute(query)}
    finally:
        engine.dispose()


def _operation(entry: dict[str, Any]) -> str:
    found = find_operation(entry["method"], entry["path"])
    return found.operation_id if found is not None else "other"


async def test_metrics_agree_with_the_sandbox_and_the_audit_log(sqlite_url: str) -> None:
    run = await _run(8, 3, {"429": 0.2, "seed": 11}, sqlite_url)
    before, after, summary = run["before"], run["after"], run["summary"]
    assert isinstance(summary, Summary) and summary.problems == []

    # GHL calls by operation and status: exactly the sandbox's call log.
    logged = Counter((_operation(e), str(e["status"])) for e in run["log"])
    grown = {
        key: n
        for key, n in by_label(after, "ghlsync_ghl_calls_total", "operation", "status").items()
        if n - by_label(before, "ghlsync_ghl_calls_total", "operation", "status").get(key, 0)
    }
    grown = {
        key: n - by_label(before, "ghlsync_ghl_calls_total", "operation", "status").get(key, 0)
        for key, n in grown.items()
    }
    assert grown == dict(logged)
    assert "other" not in {op for op, _ in logged}  # every call is named by its operation
    throttled = sum(1 for e in run["log"] if e["status"] == 429)
    assert throttled > 0
    assert delta(after, before, "ghlsync_ghl_rate_limited_total") == throttled
    assert delta(after, before, "ghlsync_ghl_retries_total", reason="throttled") == throttled
    # One duration observed per answered call.
    assert delta(after, before, "ghlsync_ghl_call_duration_seconds_count") == len(run["log"])

    # Sync outcomes: the audit log's lines, entity by entity and action by action.
    outcomes = _audit_counts(sqlite_url)
    grown_outcomes = {
        key: n - by_label(before, "ghlsync_sync_outcomes_total", "entity", "action").get(key, 0)
        for key, n in by_label(after, "ghlsync_sync_outcomes_total", "entity", "action").items()
    }
    assert {k: n for k, n in grown_outcomes.items() if n} == outcomes
    assert delta(after, before, "ghlsync_sync_outcomes_total", action="created") > 0
    dead = len(summary.dead_letters)
    assert dead == 1
    assert delta(after, before, "ghlsync_dead_letters_total") == dead
    latency = delta(after, before, "ghlsync_sync_latency_seconds_count", entity="contact")
    assert 0 < latency <= summary.count("contact", "created") + summary.count("contact", "updated")

    # The receiver's answers by event (this app's own counters).
    answered = Counter((e.event, e.expect_status) for e in run["events"])
    for (event, status), n in answered.items():
        answer = {202: "accepted", 200: "duplicate"}.get(status)
        if answer is not None:
            assert value(after, "ghlsync_dripjobs_events_total", event=event, answer=answer) == n

    # Gauges read from the store at scrape time: drained, one dead letter open.
    loc = run["location"]
    assert value(after, "ghlsync_queue_depth", location=loc) == 0
    assert value(after, "ghlsync_queue_lag_seconds", location=loc) == 0
    assert value(after, "ghlsync_dead_letters_open", location=loc) == dead
    assert value(after, "ghlsync_rate_paused_seconds", location=loc) >= 0
    assert value(after, "ghlsync_rate_burst_limit", location=loc) > 0
    assert value(after, "ghlsync_rate_daily_limit", location=loc) > 0
    # The sandbox reports X-RateLimit-Remaining like GHL: the gauge has it.
    assert ("ghlsync_rate_burst_remaining", frozenset({("location", loc)})) in after


async def test_label_values_stay_bounded_whatever_the_contacts(sqlite_url: str) -> None:
    run = await _run(12, 5, {}, sqlite_url)
    # The series this run touched (the sync's counters are process-wide: other tests' series,
    # e.g. a raw request to an unregistered path, are not this run's to judge).
    before: Samples = run["before"]
    after: Samples = {k: v for k, v in run["after"].items() if v != before.get(k)}
    names = {name for label_set in (ls for _, ls in after) for name, _ in label_set}
    assert names <= ALLOWED_LABELS
    # No label value is an id or an email of what was sent; locations are the one we serve.
    sent = "\n".join(str(e.body) for e in run["events"])
    ids = set(re.findall(r"[\w.+-]+@[\w.-]+", sent)) | set(re.findall(r"'(\d{3,})'", sent))
    values = {v for _, ls in after for k, v in ls if k != "le"}
    assert ids and not (values & ids), values & ids
    locations = {v for _, ls in after for k, v in ls if k == "location"}
    assert locations == {run["location"]}
    # Operations are spec operation ids and statuses HTTP codes: closed sets, not per record.
    calls = by_label(after, "ghlsync_ghl_calls_total", "operation", "status")
    assert calls and {op for op, _ in calls} <= set(OPERATIONS)
    assert all(re.fullmatch(r"\d{3}|transport_error", status) for _, status in calls)
    entities = {v for _, ls in after for k, v in ls if k == "entity"}
    assert entities <= {"contact", "appointment", "task", "note", "opportunity"}


def test_token_expiry_and_connection_gauges_come_from_the_store(tmp_path: Any) -> None:
    engine = create_engine(f"sqlite:///{tmp_path}/store.db")
    migrate(engine)
    rows: list[dict[str, Any]] = [
        {"key": "loc_a", "status": "active", "expires_at": 1_900_000_000.0},
        {"key": "loc_b", "status": "reconnect_needed", "expires_at": None},
    ]
    with engine.begin() as conn:
        for row in rows:
            conn.execute(
                sa.insert(ghl_connections).values(
                    user_type="Location",
                    kind="oauth",
                    access_token=b"sealed",
                    updated_at=1.0,
                    **row,
                )
            )
    collector = QueueCollector(engine, ttl=60.0)
    registry = CollectorRegistry()
    registry.register(collector)
    samples = parse(generate_latest(registry).decode())
    up = "ghlsync_ghl_connection_up"
    assert value(samples, up, location="loc_a") == 1 and value(samples, up, location="loc_b") == 0
    expires = "ghlsync_ghl_token_expires_timestamp_seconds"
    assert value(samples, expires, location="loc_a") == 1_900_000_000.0
    assert total(samples, expires, location="loc_b") == 0  # no series: nothing to expire
    # A second scrape within the TTL reuses the reading (no store queries per scrape).
    with engine.begin() as conn:
        conn.execute(sa.delete(ghl_connections))
    again = parse(generate_latest(registry).decode())
    assert value(again, up, location="loc_a") == 1
    engine.dispose()


async def test_writeback_metrics_count_each_answer(tw: TwoWay) -> None:
    before = sync_now()
    first = _queue_writeback(tw, "create_lead:g1")
    tw.hook.faults = [429, 500]  # two retries, then delivered
    for _ in range(3):
        await tw.sender.drain_once()
        tw.clock.advance(600)
    second = _queue_writeback(tw, "create_lead:g2")
    tw.hook.faults = [400]  # the Zap refuses it: dead at once
    await tw.sender.drain_once()
    after = sync_now()

    assert first != second
    grown = {
        outcome: delta(
            after, before, "ghlsync_writebacks_total", action="create_lead", outcome=outcome
        )
        for outcome in ("delivered", "retry", "dead")
    }
    assert grown == {"delivered": 1, "retry": 2, "dead": 1}
    posts = delta(after, before, "ghlsync_writeback_duration_seconds_count", action="create_lead")
    assert posts == 4  # every POST that was answered


def _queue_writeback(tw: TwoWay, key: str) -> str:
    with begin_immediate(tw.engine) as conn:
        queued = enqueue(
            conn,
            location_id="loc1",
            action="create_lead",
            dedupe_key=key,
            ghl_entity="contact",
            ghl_id=key.rsplit(":", 1)[1],
            data={"email": "a@b.c"},
            url=HOOK + "create_lead",
            now=tw.clock.now(),
        )
    return queued.id


def test_queue_gauges_read_depth_lag_and_dead_letters_per_location(
    engine_store: sa.Engine, engine_clock: FakeClock
) -> None:
    received = engine_clock.now()
    send(
        engine_store,
        delivery("c1", location="loc_a", received_at=received),
        delivery("c2", location="loc_a", received_at=received + 10),
        delivery("c3", location="loc_b", received_at=received + 20),
    )
    engine_clock.advance(25)
    [item] = claim(engine_store, "w1", ["loc_b"], 1, 60.0, clock=engine_clock)
    with begin_immediate(engine_store) as conn:
        dead_letter_in(conn, item, "bad data", "ValueError", [], received + 25)
    engine_clock.advance(5)
    registry = CollectorRegistry()
    registry.register(QueueCollector(engine_store, clock=engine_clock))
    samples = parse(generate_latest(registry).decode())

    assert value(samples, "ghlsync_queue_depth", location="loc_a") == 2
    assert value(samples, "ghlsync_queue_lag_seconds", location="loc_a") == pytest.approx(30)
    assert value(samples, "ghlsync_queue_depth", location="loc_b") == 0
    assert value(samples, "ghlsync_queue_lag_seconds", location="loc_b") == 0
    assert value(samples, "ghlsync_dead_letters_open", location="loc_b") == 1
    assert value(samples, "ghlsync_dead_letters_open", location="loc_a") == 0
