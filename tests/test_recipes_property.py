"""Property: random event streams with recipes never make a duplicate task or a second
workflow enrolment.

Streams mix leads (from sources the onboarding recipe takes or not), duplicate deliveries of
the same event, completed "Send estimate" tasks (which start a 3-day follow-up timer),
accepted proposals (which cancel it), time passing, lost GHL answers after GHL made a task
(the create's outcome unknown: retried), worker batches killed mid-flight (leases lost) and
dead letters replayed. After everything settles, each customer has at most one of each recipe
task, exactly one onboarding iff its lead came from a listed source, and at most one
enrolment request.

CI runs a few examples; `GHLSYNC_RECIPES_EXAMPLES=500` runs more.
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ghlsync._clock import FakeClock
from ghlsync.engine import replay_all
from ghlsync.engine._worker import Worker
from ghlsync.engine.flows.recipes._names import forget_names
from ghlsync.engine.flows.to_ghl._pipelines import forget_pipelines
from ghlsync.mapping import Mapper
from ghlsync.store import create_engine, migrate
from ghlsync.store._tables import metadata
from tests._engine_flows_kit import make_client
from tests._recipes_kit import FOLLOW_UP, ONBOARDING, START, deliver, with_recipes
from tests._sandbox import InProcessSandbox

EXAMPLES = int(os.environ.get("GHLSYNC_RECIPES_EXAMPLES", "6"))
CUSTOMERS = 3
# The DripJobs task (synced by the flows) whose completion starts the follow-up; its title
# differs from the onboarding's own "Send estimate" task so each title counts one source.
DRIPJOBS_TASK = "Send estimate (DripJobs)"
FOLLOW = {**FOLLOW_UP, "if": {"task_title": DRIPJOBS_TASK}}

customer = st.integers(0, CUSTOMERS - 1)
step = st.one_of(
    st.tuples(st.just("lead"), customer, st.integers(1, 3)),
    st.tuples(st.just("done"), customer, st.integers(1, 2)),
    st.tuples(st.just("accept"), customer, st.integers(1, 2)),
    st.tuples(st.just("tick"), st.sampled_from([60, 3600, 86400, 2 * 86400]), st.just(0)),
    st.tuples(st.just("drain"), st.integers(0, 2), st.just(0)),
    st.tuples(st.just("drain"), st.integers(0, 2), st.just(0)),
    st.tuples(st.just("kill"), st.just(0), st.just(0)),
    st.tuples(st.just("replay"), st.just(0), st.just(0)),
)


class LossyTransport(httpx2.AsyncBaseTransport):
    """Forwards to the sandbox; the next `lose` task creates are applied and their answers
    lost (a timeout: the worker cannot know the task exists)."""

    def __init__(self, inner: httpx2.AsyncBaseTransport) -> None:
        self.inner = inner
        self.lose = 0

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await self.inner.handle_async_request(request)
        await response.aread()
        if self.lose and request.method == "POST" and request.url.path.endswith("/tasks"):
            self.lose -= 1
            raise httpx2.ReadTimeout("answer lost (test)", request=request)
        return response


def _person(i: int, source: str) -> dict[str, Any]:
    return {
        "customer_id": f"C{i}",
        "first_name": f"P{i}",
        "email": f"p{i}@example.com",
        "lead_source": source,
    }


def _empty(engine: sa.Engine) -> None:
    """Every table emptied (one store serves all examples of a test)."""
    with engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            conn.execute(table.delete())


async def _play(stream: list[tuple[str, int, int]], sources: list[str], engine: sa.Engine) -> None:
    _empty(engine)
    forget_names()
    forget_pipelines()
    sandbox = InProcessSandbox()
    config = with_recipes(ONBOARDING, FOLLOW)
    clock = FakeClock(START)
    lossy = LossyTransport(sandbox.transport())
    loc = sandbox.location_id
    async with make_client(sandbox.url, sandbox.token, loc, lossy) as client:
        worker = Worker(engine, client, Mapper(config), config, clock=clock, outbox=None)

        async def drain() -> None:
            while await worker.run_once():
                pass

        def send(delivery_id: str, event: str, **payload: Any) -> None:
            deliver(engine, config, loc, delivery_id, event, clock.now() - 1, **payload)

        for kind, a, b in stream:
            person = _person(a, sources[a]) if kind in ("lead", "done", "accept") else {}
            if kind == "lead":
                for _ in range(b):  # the same delivery, again and again
                    send(f"lead-{a}", "lead.created", **person)
            elif kind == "done":
                for _ in range(b):
                    task = {"task_id": f"T{a}", "task_title": DRIPJOBS_TASK}
                    send(f"done-{a}", "task.completed", **person, **task)
            elif kind == "accept":
                for _ in range(b):
                    send(f"acc-{a}", "proposal.accepted", **person)
            elif kind == "tick":
                clock.advance(a)
            elif kind == "drain":
                lossy.lose = a  # lose the answers of the next `a` task creates
                await drain()
            elif kind == "kill":  # a batch claimed, its worker gone: leases expire later
                await asyncio.to_thread(_claim_and_vanish, worker)
            else:
                await asyncio.to_thread(replay_all, engine)
        for _ in range(12):  # settle: every retry, lease and timer comes due
            await asyncio.to_thread(replay_all, engine)
            clock.advance(4 * 86400)
            await drain()
    _check(sandbox, stream, sources)


def _claim_and_vanish(worker: Worker) -> None:
    from ghlsync.engine import claim

    claim(worker.engine, "ghost", None, 2, worker.lease_seconds, clock=worker.clock)


def _check(
    sandbox: InProcessSandbox, stream: list[tuple[str, int, int]], sources: list[str]
) -> None:
    location = sandbox.state.location(sandbox.location_id)
    assert location is not None
    by_id = {c["id"]: c for c in location.contacts.values()}
    titles = Counter((by_id[t["contactId"]]["email"], t["title"]) for t in location.tasks.values())
    assert all(n == 1 for n in titles.values()), titles
    enrolments = Counter(
        r["path"]
        for r in list(sandbox.state.requests)
        if r["method"] == "POST" and "/workflow/" in r["path"]
    )
    assert all(n == 1 for n in enrolments.values()), enrolments
    leads = {a for kind, a, _ in stream if kind == "lead"}
    onboarded = {i for i in leads if sources[i] in ("Website", "Angi")}
    calls = {email for email, title in titles if title.startswith("Call ")}
    assert calls == {f"p{i}@example.com" for i in onboarded}
    assert len(enrolments) == len(onboarded)


@pytest.fixture
def store(database_url: str) -> Iterator[sa.Engine]:
    """One migrated store (SQLite and PostgreSQL), emptied before each example."""
    engine = create_engine(database_url)
    migrate(engine)
    yield engine
    engine.dispose()


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,  # the store is emptied per example on purpose
    ],
)
@given(
    stream=st.lists(step, min_size=3, max_size=25),
    sources=st.lists(st.sampled_from(["Website", "Angi", "Yelp"]), min_size=3, max_size=3),
)
def test_random_streams_never_duplicate_a_task_or_an_enrolment(
    store: sa.Engine, stream: list[tuple[str, int, int]], sources: list[str]
) -> None:
    asyncio.run(_play(stream, sources, store))
