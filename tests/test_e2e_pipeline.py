"""End to end over real HTTP on loopback: receiver → store → worker → GHL sandbox.

Every part is the real one (uvicorn for the receiver and the sandbox, the real store on SQLite
and PostgreSQL, the worker `ghlsync serve` builds); the demo stream's `Expected` model says
what the sandbox must hold afterwards, and the pipeline's verification checks it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from ghlsync.demo import DemoEvent, Pipeline, PipelineOptions, Summary, build_stream


@pytest.fixture(autouse=True)
def _quiet_client() -> Iterator[None]:
    """Injected faults make the GHL client log warnings; they are expected here."""
    logger = logging.getLogger("ghlsync")
    level = logger.level
    logger.setLevel(logging.ERROR)
    yield
    logger.setLevel(level)


async def run(
    customers: int, seed: int, options: PipelineOptions
) -> tuple[Summary, list[dict[str, Any]], Any]:
    """Push a stream through a fresh pipeline: its summary, the sandbox call log, `Expected`."""
    events, expected = build_stream(customers, seed=seed)
    async with Pipeline(options) as pipe:
        answers = await pipe.send(events)
        await pipe.wait_drained()
        summary = await pipe.summarize(events, answers, expected)
        # A held ("timeout") answer is logged when its hold ends, after the client gave up.
        await asyncio.sleep(options.faults.get("timeout_seconds", 0.0))
        requests: list[dict[str, Any]] = await pipe.sandbox_json("/_sandbox/requests")
    return summary, requests, expected


async def test_pipeline_syncs_exactly_what_the_events_imply(database_url: str) -> None:
    summary, requests, expected = await run(15, 3, PipelineOptions(database_url=database_url))

    assert summary.problems == []
    assert expected.duplicates > 0 and expected.noop_updates > 0  # the stream has both
    assert summary.answers == {
        200: expected.duplicates,  # replayed deliveries: answered, nothing stored
        202: summary.events_sent - expected.duplicates - expected.rejected,
        400: 2,  # a body that is not JSON, a lead without its id field
        404: 1,  # an event nobody configured
    }
    assert summary.count("contact", "created") == len(expected.contacts)
    assert summary.count("contact", "skipped") > 0  # no-op updates cost nothing
    assert summary.throttled == 0
    assert {r["status"] for r in requests} <= {200, 201}
    assert [(d.entity_type, d.event) for d in summary.dead_letters] == [
        ("contact", "customer.created")
    ]
    assert "'not-an-email' is not an email address" in summary.dead_letters[0].reason


@pytest.mark.parametrize(
    ("fault", "rates"),
    [
        ("429", {"429": 0.15}),
        ("500", {"500": 0.15}),
        ("timeout", {"timeout": 0.1, "timeout_seconds": 0.6}),
        ("reset", {"reset": 0.15}),
    ],
)
async def test_faults_leave_the_same_final_state(
    sqlite_url: str, fault: str, rates: dict[str, float]
) -> None:
    options = PipelineOptions(
        database_url=sqlite_url,
        faults={**rates, "seed": 11},
        client_timeout=0.3,  # below the sandbox's hold, so "timeout" faults time out
        burst=100,
        interval_ms=200,  # a 429 pauses the location one interval: keep it short
    )
    summary, requests, expected = await run(20, 5, options)  # about 80 GHL requests

    assert summary.problems == []  # one contact each, every child once, nothing extra
    assert sum(1 for r in requests if r.get("fault") == fault) > 0, "no fault was injected"
    # (No count of `created` audit lines here: a contact created in an attempt that then
    # failed on its task is recorded only by the retry, as unchanged.)
    assert len(summary.dead_letters) == expected.dead_letters


@pytest.mark.postgres
async def test_all_faults_at_once_on_postgres(postgres_url: str) -> None:
    faults = {"429": 0.05, "500": 0.05, "timeout": 0.03, "reset": 0.03, "timeout_seconds": 0.6}
    options = PipelineOptions(
        database_url=postgres_url,
        faults={**faults, "seed": 2},
        client_timeout=0.3,
        burst=100,
        interval_ms=200,  # a 429 pauses the location one interval: keep it short
    )
    summary, requests, _ = await run(10, 9, options)

    assert summary.problems == []
    assert {r.get("fault") for r in requests} - {None} != set()


async def drain_with(pipe: Pipeline) -> None:
    """Run the pipeline's own worker batch by batch until the queue is empty."""
    assert pipe.worker is not None
    while await pipe.worker.run_once():
        pass
    await pipe.wait_drained()


async def test_a_late_customer_event_still_fills_what_a_task_event_lacked(
    sqlite_url: str,
) -> None:
    ident = {"customer_id": "C-1", "email": "ann@example.com", "first_name": "Ann"}
    task = DemoEvent(
        "task.created",
        {**ident, "task_id": "T-1", "task_title": "Call", "updated_at": "2026-12-01T10:05:00Z"},
    )
    lead = DemoEvent(
        "lead.created",
        {
            **ident,
            "last_name": "Lee",
            "phone": "(512) 555-0101",
            "updated_at": "2026-12-01T10:00:00Z",
        },
    )
    options = PipelineOptions(database_url=sqlite_url, start_worker=False)
    async with Pipeline(options) as pipe:
        assert [a.status for a in await pipe.send([task])] == [202]
        await drain_with(pipe)  # the task's Zap was faster: its partial contact goes first
        assert [a.status for a in await pipe.send([lead])] == [202]
        await drain_with(pipe)
        state = await pipe.sandbox_json("/_sandbox/state")
    (contact,) = state["locations"][pipe.location_id]["contacts"]
    assert contact.get("lastName") == "Lee"
    assert contact.get("phone") == "+15125550101"
    assert "lead" in contact.get("tags", [])
