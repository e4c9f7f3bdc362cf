"""Crash safety: real worker processes SIGKILLed at random points while syncing thousands of
deliveries, then restarted; GHL ends up holding every record exactly once.

The receiver accepts the whole demo stream first (over HTTP, into a real store); then worker
processes sync it to the sandbox on loopback. Each one is killed (SIGKILL: no cleanup, leases
left behind, a request possibly half-sent) once the queue has made a seeded random amount of
progress, and a new one is started at once; it takes the dead worker's items over when their
short leases expire. The last one runs until the queue is drained.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from ghlsync.demo import Pipeline, PipelineOptions, build_stream
from tests._robust_kit import (
    CLI_WORKER,
    WorkerProcess,
    duplicate_records,
    finished,
    queue_totals,
    runner_worker,
    wait_until,
    write_config,
)

LEASE_SECONDS = 1.5
# A generous limit with a short window: an injected 429 pauses the location for one window.
BURST, INTERVAL_MS = 1_000_000, 100
FAULT_KINDS = {"429", "500", "timeout", "reset"}
FAULTS = {
    "429": 0.03,
    "500": 0.03,
    "timeout": 0.025,  # ~12 expected: never zero, or the check below would flake
    "reset": 0.03,
    "timeout_seconds": 1.5,
    "seed": 3,
}


@pytest.fixture(autouse=True)
def _quiet_client() -> Iterator[None]:
    """Injected faults make the in-process parts log warnings; they are expected here."""
    import logging

    logger = logging.getLogger("ghlsync")
    level = logger.level
    logger.setLevel(logging.ERROR)
    yield
    logger.setLevel(level)


async def _kill_and_restart(
    pipe: Pipeline, command: list[str], env: Mapping[str, str], log: Path, *, kills: int, seed: int
) -> tuple[WorkerProcess, list[int]]:
    """Start a worker; `kills` times, SIGKILL it at a random point of progress and start
    another. Returns the last one, still running, and the items each killed one held."""
    assert pipe.engine is not None
    engine: sa.Engine = pipe.engine
    total = sum(queue_totals(engine)[s] for s in ("pending", "leased", "done", "dead"))
    rng = random.Random(seed)
    marks = sorted(rng.uniform(0.05, 0.85) * total for _ in range(kills))
    worker = WorkerProcess(command, env, log)
    held: list[int] = []
    for mark in marks:

        def reached(target: float = mark, worker: WorkerProcess = worker) -> bool:
            assert worker.alive(), f"the worker exited on its own:\n{worker.output()}"
            return finished(queue_totals(engine)) >= target

        await wait_until(reached, seconds=120, what=f"{mark:.0f} of {total} items finished")
        held.append(queue_totals(engine)["leased"])
        worker.kill()
        worker = WorkerProcess(command, env, log)
    return worker, held


def _drained(pipe: Pipeline, worker: WorkerProcess) -> bool:
    assert worker.alive(), f"the worker exited on its own:\n{worker.output()}"
    assert pipe.engine is not None
    totals = queue_totals(pipe.engine)
    return totals["pending"] + totals["leased"] == 0


async def _crash_run(
    database_url: str,
    tmp_path: Path,
    *,
    customers: int,
    kills: int,
    faults: Mapping[str, Any],
    command: list[str],
) -> None:
    events, expected = build_stream(customers, seed=23)
    config = write_config(
        tmp_path / "ghlsync.yaml",
        lease_seconds=LEASE_SECONDS,
        max_attempts=30,
        poll_interval=0.1,
        concurrency=8,
    )
    options = PipelineOptions(
        database_url=database_url,
        start_worker=False,
        faults=dict(faults),
        burst=BURST,
        interval_ms=INTERVAL_MS,
    )
    async with Pipeline(options) as pipe:
        answers = await pipe.send(events)
        env = {**pipe.environment(), "GHLSYNC_CONFIG": str(config)}
        worker, held = await _kill_and_restart(
            pipe, command, env, tmp_path / "worker.log", kills=kills, seed=5
        )
        try:
            await wait_until(lambda: _drained(pipe, worker), seconds=240, what="the queue to drain")
        finally:
            code = worker.stop()
        assert code == 0, worker.output()
        summary = await pipe.summarize(events, answers, expected)
        state = await pipe.sandbox_json("/_sandbox/state")
        log = await pipe.sandbox_json("/_sandbox/requests")

    injected = {str(r["fault"]) for r in log if r.get("fault")}
    assert injected == set(faults) & FAULT_KINDS  # each kind of fault really happened
    assert any(held), "no kill caught the worker holding items: nothing was taken over"
    assert summary.problems == [], "\n".join(summary.problems[:30])
    assert duplicate_records(state, pipe.location_id) == []
    assert len(state["locations"][pipe.location_id]["contacts"]) == len(expected.contacts)


async def test_killed_workers_leave_every_record_exactly_once(
    database_url: str, tmp_path: Path
) -> None:
    # PostgreSQL syncs fewer items per second here (a round trip per queue and budget write).
    customers = 400 if database_url.startswith("sqlite") else 150
    await _crash_run(
        database_url, tmp_path, customers=customers, kills=5, faults={}, command=CLI_WORKER
    )


async def test_killed_workers_and_flaky_ghl_leave_every_record_exactly_once(
    database_url: str, tmp_path: Path
) -> None:
    await _crash_run(
        database_url, tmp_path, customers=100, kills=3, faults=FAULTS, command=runner_worker(1.0)
    )
