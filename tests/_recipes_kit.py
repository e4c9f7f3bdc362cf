"""Helpers for the recipes tests: deliveries into the real inbox, a worker with recipes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from ghlsync._clock import FakeClock
from ghlsync.dripjobs._keys import fold_keys
from ghlsync.engine import Delivery, accept
from ghlsync.engine._worker import Worker
from ghlsync.mapping import AppConfig, Mapper
from ghlsync.store import begin_immediate
from ghlsync.store._tables_engine import work_items
from tests._engine_flows_kit import make_client
from tests._sandbox import InProcessSandbox

START = 1_700_000_000.0  # FakeClock's start: Tue 2023-11-14 22:13:20 UTC

ONBOARDING: dict[str, Any] = {
    "name": "new-lead-onboarding",
    "when": {"trigger": "dripjobs.lead.created"},
    "if": {"lead_source": {"in": ["Website", "Angi"]}},
    "do": [
        {"create_task": {"title": "Call {first_name} within 5 minutes", "due": "+0d +5m"}},
        {"create_task": {"title": "Send estimate", "due": "+1d 09:00"}},
        {"add_tags": ["new-lead"]},
        {"add_to_workflow": {"workflow": "New lead nurture"}},
    ],
}

FOLLOW_UP: dict[str, Any] = {
    "name": "estimate-follow-up",
    "when": {"trigger": "dripjobs.task.completed"},
    "if": {"task_title": "Send estimate"},
    "do": [{"create_task": {"title": "Follow up on the estimate", "due": "+0d 10:00"}}],
    "after": {"wait": "3d", "unless": "dripjobs.proposal.accepted"},
}

LEAD: dict[str, Any] = {
    "customer_id": "C1",
    "first_name": "Ann",
    "last_name": "Lee",
    "email": "ann@example.com",
    "phone": "+1 415-555-2671",
    "lead_source": "Website",
}


def with_recipes(*recipes: dict[str, Any]) -> AppConfig:
    """The preset with these recipes."""
    return AppConfig.default().model_copy(update={"recipes": list(recipes)})


def deliver(
    engine: sa.Engine,
    config: AppConfig,
    location: str,
    delivery_id: str,
    event: str,
    received_at: float = START - 1000.0,
    **payload: Any,
) -> None:
    """Accept one DripJobs delivery into the real inbox (as the receiver does)."""
    key = Mapper(config).entity_key(event, payload)
    delivery = Delivery(
        connection_id="conn1",
        location_id=location,
        event=event,
        delivery_id=delivery_id,
        payload=fold_keys(payload),
        entity_type=key.type,
        source_id=key.source_id,
        source_updated_at=None,
        received_at=received_at,
    )
    with begin_immediate(engine) as conn:
        accept(conn, delivery)


@dataclass
class Rig:
    """A worker with recipes on the in-process sandbox, and what to look at."""

    engine: sa.Engine
    sandbox: InProcessSandbox
    config: AppConfig
    worker: Worker
    clock: FakeClock

    def deliver(self, delivery_id: str, event: str, **payload: Any) -> None:
        """One DripJobs delivery, received a second ago by the worker's clock."""
        loc, now = self.sandbox.location_id, self.clock.now()
        deliver(self.engine, self.config, loc, delivery_id, event, now - 1, **payload)

    async def drain(self) -> None:
        """Run the worker until nothing is claimable now."""
        while await self.worker.run_once():
            pass

    def location(self) -> Any:
        found = self.sandbox.state.location(self.sandbox.location_id)
        assert found is not None
        return found

    def tasks(self) -> list[str]:
        """Titles of the sandbox's tasks, sorted."""
        return sorted(t["title"] for t in self.location().tasks.values())

    def calls(self, method: str, fragment: str) -> int:
        """How many API calls of `method` had `fragment` in their path."""
        return sum(
            1
            for r in list(self.sandbox.state.requests)
            if r["method"] == method and fragment in r["path"]
        )

    def waiting(self) -> list[tuple[str, float]]:
        """(status, available_at) of the recipe rows."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(work_items.c.status, work_items.c.available_at).where(
                    work_items.c.entity_type == "recipe"
                )
            ).all()
        return [(r[0], float(r[1])) for r in rows]


@asynccontextmanager
async def rig(
    engine: sa.Engine, sandbox: InProcessSandbox, recipes: Sequence[dict[str, Any]]
) -> AsyncIterator[Rig]:
    """A worker (fake clock) with `recipes` on the sandbox."""
    config = with_recipes(*recipes)
    clock = FakeClock(START)
    loc = sandbox.location_id
    async with make_client(sandbox.url, sandbox.token, loc, sandbox.transport()) as client:
        worker = Worker(engine, client, Mapper(config), config, clock=clock, outbox=None)
        yield Rig(engine, sandbox, config, worker, clock)
