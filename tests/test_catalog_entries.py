"""Every catalog entry works: each trigger goes through the real receiver (DripJobs hooks with
the Zap's bearer secret, GHL hooks signed with the sandbox's key) into a recipe run, each action
runs against the sandbox and makes the call its entry names. The cases are the registries
themselves (`engine.flows.recipes.TRIGGERS` / `ACTIONS`), so an entry without a working
case fails.

One receiver (real HTTP on loopback) and one in-process GHL sandbox serve the whole module, per
store (SQLite, PostgreSQL); every trigger has its own recipe (`when: <trigger>`: tag the
contact, or add a location tag for an event about no contact).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx2
import pytest
import sqlalchemy as sa

from ghlsync._clock import SYSTEM_CLOCK
from ghlsync._secret import Secret
from ghlsync.engine._worker import Worker
from ghlsync.engine.flows.recipes import ACTIONS, TRIGGERS
from ghlsync.engine.flows.recipes._context import StepContext
from ghlsync.engine.flows.to_ghl._plan import LiveSender
from ghlsync.mapping import AppConfig, Mapper
from ghlsync.sandbox import SandboxState
from ghlsync.server import create_app, serve_in_thread
from ghlsync.store import create_engine, migrate
from ghlsync.store._tables_engine import work_items
from ghlsync.store._tables_twoway import writeback_outbox
from tests._catalog_kit import USERS, action_inputs, dripjobs_body, ghl_event
from tests._db import fresh_postgres_database
from tests._engine_flows_kit import make_client
from tests._sandbox import InProcessSandbox

SECRET = "catalog-secret-0123456789"
BEARER = {"Authorization": f"Bearer {SECRET}"}
DRIPJOBS = [t for t in TRIGGERS if t.startswith("dripjobs.")]
GHL = [t for t in TRIGGERS if t.startswith("ghl.")]


def _recipe(number: int, trigger: str) -> dict[str, Any]:
    """A recipe on `trigger`: tag the contact, or (an event about no contact: a product, a
    custom object, ...) add a location tag."""
    names = {f.name for f in TRIGGERS[trigger].fields}
    about_contact = trigger.startswith(("dripjobs.", "ghl.Contact")) or bool(
        names & {"contactId", "appointment.contactId", "contactDetails"}
    )
    step = {"add_tags": ["catalog"]} if about_contact else {"create_tag": "catalog"}
    return {"name": f"catalog-{number}", "when": {"trigger": trigger}, "do": [step]}


@dataclass
class Rig:
    """The module's receiver, store and sandbox."""

    url: str
    http: httpx2.Client
    engine: sa.Engine
    sandbox: InProcessSandbox
    config: AppConfig

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


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def rig(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    if request.param == "sqlite":
        urls: Iterator[str] = iter([f"sqlite:///{tmp_path_factory.mktemp('cat') / 'ghlsync.db'}"])
    else:
        urls = fresh_postgres_database()
    for url in urls:
        yield from _rig(url)


def _rig(url: str) -> Iterator[Rig]:
    sandbox = InProcessSandbox(SandboxState(burst=100_000))  # the pace is not under test
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
            "users": USERS,
        }
    )
    engine = create_engine(url)
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


async def _ghl_contact(rig: Rig) -> str:
    """A GHL contact of the sandbox for a GHL event to be about."""
    async with rig.sandbox.client() as http:
        answer = await http.post(
            "/contacts/upsert",
            json={"locationId": rig.sandbox.location_id, "email": "catalog@example.com"},
        )
    return str(answer.json()["contact"]["id"])


@pytest.mark.parametrize("trigger", GHL)
async def test_every_ghl_trigger_goes_through_the_receiver_into_its_recipe(
    rig: Rig, trigger: str
) -> None:
    contact = await _ghl_contact(rig)
    before = rig.runs(trigger)
    event = ghl_event(TRIGGERS[trigger], rig.sandbox.location_id, contact)
    event |= {"webhookId": f"wh-{trigger}", "timestamp": datetime.now(UTC).isoformat()}
    body = json.dumps(event).encode()
    headers = {
        "content-type": "application/json",
        "x-ghl-signature": rig.sandbox.app.state.webhooks.sign(body),  # GHL's key: the sandbox's
    }
    answer = rig.http.post("/hooks/ghl", content=body, headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "accepted", answer.text

    await rig.drain()

    assert new_runs(rig, trigger, before) == ["done"]


async def _records(rig: Rig, wanted: set[str]) -> dict[str, str]:
    """A fresh sandbox contact and, for the id types an action takes, a record of each."""
    box, loc = rig.sandbox, rig.sandbox.location_id
    made: dict[str, str] = {}
    async with box.client() as http, box.client("2021-04-15") as calendars:
        email = f"step-{len(box.state.requests)}@example.com"
        answer = await http.post("/contacts/upsert", json={"locationId": loc, "email": email})
        contact = made["contact"] = answer.json()["contact"]["id"]
        made["calendar"] = box.calendar_id
        if "task-id" in wanted:
            body = {"title": "Call", "dueDate": "2026-12-09T15:00:00Z", "completed": False}
            answer = await http.post(f"/contacts/{contact}/tasks", json=body)
            made["task-id"] = answer.json()["task"]["id"]
        if "note-id" in wanted:
            answer = await http.post(f"/contacts/{contact}/notes", json={"body": "Gate 12"})
            made["note-id"] = answer.json()["note"]["id"]
        if wanted & {"appointment-id", "appointment-note-id"}:
            body = {"calendarId": box.calendar_id, "locationId": loc, "contactId": contact,
                    "startTime": "2026-12-10T15:00:00Z", "endTime": "2026-12-10T16:00:00Z",
                    "ignoreFreeSlotValidation": True}  # fmt: skip
            answer = await calendars.post("/calendars/events/appointments", json=body)
            made["appointment-id"] = answer.json()["id"]
            notes = f"/calendars/appointments/{made['appointment-id']}/notes"
            answer = await calendars.post(notes, json={"body": "Bring samples"})
            made["appointment-note-id"] = answer.json()["note"]["id"]
        if "opportunity-id" in wanted:
            pipelines = await http.get("/opportunities/pipelines", params={"locationId": loc})
            pipeline = pipelines.json()["pipelines"][0]["id"]
            body = {"pipelineId": pipeline, "locationId": loc, "contactId": contact,
                    "name": "Repaint", "status": "open"}  # fmt: skip
            answer = await http.post("/opportunities/upsert", json=body)
            made["opportunity-id"] = answer.json()["opportunity"]["id"]
        if "business-id" in wanted:
            answer = await http.post("/businesses/", json={"name": "Acme", "locationId": loc})
            made["business-id"] = answer.json()["buiseness"]["id"]
    return made


def _called(rig: Rig, operation: str, since: int) -> list[int]:
    """Statuses of the sandbox calls since `since` that match `operation` ("PUT /a/{id}")."""
    method, path = operation.split(" ", 1)
    parts = re.split(r"\{[^}]+\}", path)
    pattern = re.compile("^" + "[^/]+".join(re.escape(p) for p in parts) + "$")
    calls = list(rig.sandbox.state.requests)[since:]
    return [c["status"] for c in calls if c["method"] == method and pattern.match(c["path"])]


def _queued(rig: Rig, action: str, contact: str) -> list[str]:
    query = sa.select(writeback_outbox.c.status).where(
        writeback_outbox.c.action == action, writeback_outbox.c.ghl_id == contact
    )
    with rig.engine.connect() as conn:
        return [row[0] for row in conn.execute(query)]


@pytest.mark.parametrize("action", sorted(ACTIONS))
async def test_every_action_runs_against_the_sandbox(rig: Rig, action: str) -> None:
    spec = ACTIONS[action]
    made = await _records(rig, {i.type for i in spec.inputs})
    inputs = action_inputs(spec.inputs, made)
    box = rig.sandbox
    since = len(box.state.requests)
    async with make_client(box.url, box.token, box.location_id, box.transport()) as client:
        ctx = StepContext(
            engine=rig.engine,
            sender=LiveSender(client, box.location_id),
            config=rig.config,
            clock=SYSTEM_CLOCK,
            location_id=box.location_id,
            contact_id=made["contact"],
            calendar_id=box.calendar_id,
            key=f"catalog-{action}",
            fields={"first_name": "Ann"},
        )
        result = await spec.run(ctx, inputs)

    assert result.detail
    if spec.side == "dripjobs":
        write_back = spec.operation.removeprefix("write-back ")
        assert _queued(rig, write_back, made["contact"]), f"{action} queued no {write_back}"
    else:
        statuses = _called(rig, spec.operation, since)
        assert statuses and all(200 <= s < 300 for s in statuses), (spec.operation, statuses)
