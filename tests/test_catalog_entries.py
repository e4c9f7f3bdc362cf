"""Every catalog entry works: each DripJobs trigger goes through the real receiver into a
recipe run. The cases are the registry itself (`ghlsync.recipes.TRIGGERS`), so an entry
without a working case fails here.

One receiver (real HTTP on loopback, SQLite store) and one in-process GHL sandbox serve the
whole module; every trigger has its own recipe (`when: <trigger>`, `do: add_tags`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx2
import pytest
import sqlalchemy as sa

from ghlsync._secret import Secret
from ghlsync.engine._worker import Worker
from ghlsync.mapping import AppConfig, Mapper
from ghlsync.recipes import TRIGGERS
from ghlsync.server import create_app, serve_in_thread
from ghlsync.store import create_engine, migrate
from ghlsync.store._tables_engine import work_items
from tests._catalog_kit import dripjobs_body
from tests._engine_flows_kit import make_client
from tests._sandbox import InProcessSandbox

SECRET = "catalog-secret-0123456789"
BEARER = {"Authorization": f"Bearer {SECRET}"}
DRIPJOBS = [t for t in TRIGGERS if t.startswith("dripjobs.")]
GHL = [t for t in TRIGGERS if t.startswith("ghl.")]


def _recipe(number: int, trigger: str) -> dict[str, Any]:
    return {"name": f"catalog-{number}", "when": {"trigger": trigger},
            "do": [{"add_tags": ["catalog"]}]}  # fmt: skip


@dataclass
class Rig:
    """The module's receiver, store and sandbox."""

    url: str
    http: httpx2.Client
    engine: sa.Engine
    sandbox: InProcessSandbox
    config: AppConfig

    def sign_ghl(self, event: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
        """The body and headers GHL (here: the sandbox's key) would send."""
        body = json.dumps(event).encode()
        signature = self.sandbox.app.state.webhooks.sign(body)
        return body, {"content-type": "application/json", "x-ghl-signature": signature}

    def runs(self, trigger: str) -> dict[int, str]:
        """The recipe runs this trigger started: id → status (and why, when not done)."""
        c = work_items.c
        query = sa.select(c.id, c.status, c.last_error).where(
            c.entity_type == "recipe", c.event == trigger[:64]
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return {
            r.id: r.status if r.status == "done" else f"{r.status}: {r.last_error}" for r in rows
        }

    async def drain(self) -> None:
        """Run a worker until nothing is claimable (the flows, then the recipe runs)."""
        box = self.sandbox
        async with make_client(box.url, box.token, box.location_id, box.transport()) as client:
            worker = Worker(self.engine, client, Mapper(self.config), self.config, outbox=None)
            while await worker.run_once():
                pass


def new_runs(rig: Rig, trigger: str, before: dict[int, str]) -> list[str]:
    """The runs (their status) of `trigger` that were not there `before`."""
    return [status for run, status in rig.runs(trigger).items() if run not in before]


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    sandbox = InProcessSandbox()
    base = AppConfig.default()
    config = base.model_copy(
        update={
            "dripjobs": base.dripjobs.model_copy(update={"secret": Secret(SECRET)}),
            "ghl": base.ghl.model_copy(
                update={
                    "location_id": sandbox.location_id,
                    "calendar_id": sandbox.calendar_id,
                    "webhook_public_key": sandbox.app.state.webhooks.public_key_pem(),
                }
            ),
            "recipes": [_recipe(n, t) for n, t in enumerate(TRIGGERS)],
        }
    )
    engine = create_engine(f"sqlite:///{tmp_path_factory.mktemp('catalog') / 'ghlsync.db'}")
    migrate(engine)
    try:
        app = create_app(engine=engine, config=config)
        with serve_in_thread(app) as url, httpx2.Client(base_url=url, timeout=10) as http:
            yield Rig(url, http, engine, sandbox, config)
    finally:
        engine.dispose()


@pytest.mark.parametrize("trigger", DRIPJOBS)
async def test_every_dripjobs_trigger_goes_through_the_receiver_into_its_recipe(
    rig: Rig, trigger: str
) -> None:
    spec = TRIGGERS[trigger]
    body = dripjobs_body(spec)
    if spec.fields[0].name != "customer_id":  # a task, note, ... of a customer synced before
        customer = {"customer_id": body["customer_id"], "email": body["email"]}
        known = rig.http.post("/hooks/dripjobs/customer.created", json=customer, headers=BEARER)
        assert known.status_code == 202, known.text
        await rig.drain()
    before = rig.runs(trigger)
    answer = rig.http.post(
        f"/hooks/dripjobs/{trigger.removeprefix('dripjobs.')}", json=body, headers=BEARER
    )
    assert answer.status_code == 202, answer.text

    await rig.drain()

    assert new_runs(rig, trigger, before) == ["done"]
