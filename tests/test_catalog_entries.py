"""Every catalog entry works: each trigger goes through the real receiver (DripJobs hooks with
the Zap's bearer secret, GHL hooks signed with the sandbox's key) into a recipe run, each action
runs against the sandbox and makes the call its entry names. The cases are the registries
themselves (`engine.flows.recipes.TRIGGERS` / `ACTIONS`), so an entry without a working
case fails.

One receiver (real HTTP on loopback) and one in-process GHL sandbox serve the whole module, per
store (SQLite, PostgreSQL); every trigger has its own recipe (`when: <trigger>`: tag the
contact, or add a location tag for an event about no contact).

Every action runs twice: its `ActionSpec.run` called directly, and as the one step of a recipe
configured for it (its declared inputs with sample values, validated by `recipe_book` as a
user's config is, started by a signed GHL event through the receiver and run by the worker).
No action is left out of the recipe pass. The DripJobs write-backs do not stop at the outbox:
the worker's outbox sender delivers them, signed, to the DripJobs emulator's catch hooks
(`sandbox/dripjobs`), which must have received each with the step's inputs as its `data`, plus
the `ghl_contact_id` of the run's contact, and nothing outside the write-back contract
(`ACTION_FIELDS`, the fields the two-way sync sends). What the emulator's Zap (built per
docs/two-way.md) then does with each is checked last.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx2
import pytest
import sqlalchemy as sa
import yaml
from fastapi import FastAPI

from ghlsync._clock import SYSTEM_CLOCK
from ghlsync._secret import Secret
from ghlsync.engine._worker import Worker
from ghlsync.engine.flows.recipes import ACTIONS, TRIGGERS, ActionSpec, recipe_book
from ghlsync.engine.flows.recipes._context import StepContext
from ghlsync.engine.flows.to_ghl._plan import LiveSender
from ghlsync.engine.outbox._sender import OutboxSender
from ghlsync.mapping import AppConfig, Mapper
from ghlsync.mapping._writeback import ACTION_FIELDS, WritebackSettings
from ghlsync.sandbox import SandboxState
from ghlsync.sandbox.dripjobs import DEFAULT_WRITEBACK_SECRET, DripJobsState, create_dripjobs_app
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


def _queued(rig: Rig, action: str, contact: str) -> list[tuple[str, str]]:
    """(id, status) of the outbox rows of `action` for `contact`."""
    o = writeback_outbox.c
    query = sa.select(o.id, o.status).where(o.action == action, o.ghl_id == contact)
    with rig.engine.connect() as conn:
        return [(row[0], row[1]) for row in conn.execute(query)]


EMULATOR = "http://dripjobs.test"  # the emulator's catch hooks, called in process
WRITE_BACKS = sorted(a.removeprefix("dripjobs.") for a in ACTIONS if a.startswith("dripjobs."))
# Write-back samples the emulator's Zap can match a customer by (its email, its phone).
DRIPJOBS_SAMPLES = {"email": "ann.lee@example.com", "phone": "+14155550123"}


@dataclass
class Emulator:
    """The DripJobs emulator, in process, and the outbox sender aimed at its catch hooks."""

    state: DripJobsState
    app: FastAPI
    config: AppConfig  # the rig's, with every write-back action's URL at the emulator

    def sender(self, rig: Rig) -> OutboxSender:
        transport = httpx2.ASGITransport(app=self.app)
        return OutboxSender(rig.engine, self.config.writeback, transport=transport)

    def received(self, writeback_id: str) -> dict[str, Any]:
        """The write-back the emulator's catch hook verified and ran (its log entry)."""
        found = [e for e in self.state.writebacks if e["webhook_id"] == writeback_id]
        assert len(found) == 1, (writeback_id, self.state.counters())
        return found[0]

    def close(self) -> None:
        """Stop the emulator's trigger firer (its triggers go nowhere here)."""
        task = self.app.state.dripjobs_firer._worker
        if task is not None:
            task.cancel()


@pytest.fixture
def emulator(rig: Rig) -> Iterator[Emulator]:
    state = DripJobsState(seed=1)
    urls = {a: {"url": f"{EMULATOR}/dripjobs/hooks/catch/{a}"} for a in WRITE_BACKS}
    writeback = WritebackSettings.model_validate(
        {"secret": DEFAULT_WRITEBACK_SECRET, "actions": urls}
    )
    found = Emulator(
        state, create_dripjobs_app(state), rig.config.model_copy(update={"writeback": writeback})
    )
    yield found
    found.close()


def _inputs(spec: ActionSpec, made: dict[str, str]) -> dict[str, Any]:
    """The action's inputs, sampled (`_catalog_kit`); a write-back's email and phone real."""
    inputs = action_inputs(spec.inputs, made)
    if spec.side == "dripjobs":
        inputs |= {k: v for k, v in DRIPJOBS_SAMPLES.items() if k in inputs}
    return inputs


async def _delivered(
    rig: Rig, emulator: Emulator, sender: OutboxSender, spec: ActionSpec, made: dict[str, str]
) -> dict[str, Any]:
    """Send the outbox; the emulator's entry for this step's write-back (one queued)."""
    write_back = spec.operation.removeprefix("write-back ")
    [(writeback_id, status)] = _queued(rig, write_back, made["contact"])
    assert status == "pending", status
    await sender.drain_once()
    assert dict(_queued(rig, write_back, made["contact"])) == {writeback_id: "delivered"}
    entry = emulator.received(writeback_id)
    assert entry["action"] == write_back
    assert set(entry["data"]) <= ACTION_FIELDS[write_back], entry["data"]  # the contract's
    assert entry["data"]["ghl_contact_id"] == made["contact"]
    return entry


def _sent(inputs: dict[str, Any], contact: str) -> dict[str, str]:
    """The `data` of a write-back step given every input: those, as strings, and its contact."""
    return {**{k: str(v) for k, v in inputs.items()}, "ghl_contact_id": contact}


@pytest.mark.parametrize("action", sorted(ACTIONS))
async def test_every_action_runs_against_the_sandbox(
    rig: Rig, emulator: Emulator, action: str
) -> None:
    spec = ACTIONS[action]
    made = await _records(rig, {i.type for i in spec.inputs})
    inputs = _inputs(spec, made)
    box = rig.sandbox
    since = len(box.state.requests)
    async with make_client(box.url, box.token, box.location_id, box.transport()) as client:
        ctx = StepContext(
            engine=rig.engine,
            sender=LiveSender(client, box.location_id),
            config=emulator.config,
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
        entry = await _delivered(rig, emulator, emulator.sender(rig), spec, made)
        assert entry["data"] == _sent(inputs, made["contact"])  # flat strings, as given
    else:
        statuses = _called(rig, spec.operation, since)
        assert statuses and all(200 <= s < 300 for s in statuses), (spec.operation, statuses)


def _recipe_for(name: str, action: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """A recipe running `action` with `inputs` when a GHL contact's tags change, written as a
    user would write it (YAML; an action without inputs as a bare name)."""
    step: Any = {action: inputs} if inputs else action
    recipe = {
        "name": f"{name}-{sorted(ACTIONS).index(action)}",
        "when": {"trigger": "ghl.ContactTagUpdate"},
        "do": [step],
    }
    loaded: dict[str, Any] = yaml.safe_load(yaml.safe_dump(recipe, sort_keys=False))
    return loaded


def _recipe_runs(rig: Rig, name: str) -> list[str]:
    c = work_items.c
    query = sa.select(c.status, c.last_error).where(
        c.entity_type == "recipe", c.source_id.startswith(f"{name}|")
    )
    with rig.engine.connect() as conn:
        rows = conn.execute(query).all()
    return [r.status if r.status == "done" else f"{r.status}: {r.last_error}" for r in rows]


async def _run_recipe(
    rig: Rig, emulator: Emulator, name: str, action: str, inputs: dict[str, Any], contact: str
) -> OutboxSender:
    """Configure a recipe running `action` with `inputs`, validate it as a user's config is,
    send a signed ContactTagUpdate of `contact` through the receiver and run the worker (its
    outbox sender aimed at the emulator, not yet sent) until its recipe run is done."""
    recipe = _recipe_for(name, action, inputs)
    config = emulator.config.model_copy(update={"recipes": [recipe]})
    [checked] = recipe_book(config).enabled  # the validation a user's config gets
    assert [s.action for s in checked.do] == [action]
    box = rig.sandbox
    event = ghl_event(TRIGGERS["ghl.ContactTagUpdate"], box.location_id, contact)
    event |= {"webhookId": f"wh-{action}-{contact}", "timestamp": datetime.now(UTC).isoformat()}
    body = json.dumps(event).encode()
    headers = {
        "content-type": "application/json",
        "x-ghl-signature": box.app.state.webhooks.sign(body),
    }
    answer = rig.http.post("/hooks/ghl", content=body, headers=headers)
    assert answer.json()["status"] == "accepted", answer.text
    sender = emulator.sender(rig)
    async with make_client(box.url, box.token, box.location_id, box.transport()) as client:
        worker = Worker(rig.engine, client, Mapper(config), config, outbox=sender)
        while await worker.run_once():
            pass
    assert _recipe_runs(rig, recipe["name"]) == ["done"]
    return sender


@pytest.mark.parametrize("action", sorted(ACTIONS))
async def test_every_action_runs_as_a_configured_recipe_step(
    rig: Rig, emulator: Emulator, action: str
) -> None:
    spec = ACTIONS[action]
    made = await _records(rig, {i.type for i in spec.inputs})
    inputs = _inputs(spec, made)
    since = len(rig.sandbox.state.requests)

    sender = await _run_recipe(rig, emulator, "action", action, inputs, made["contact"])

    if spec.side == "dripjobs":
        entry = await _delivered(rig, emulator, sender, spec, made)
        assert entry["data"] == _sent(inputs, made["contact"])
    else:
        statuses = _called(rig, spec.operation, since)
        assert statuses and all(200 <= s < 300 for s in statuses), (spec.operation, statuses)


START, MOVED = "2031-05-01T15:00:00+00:00", "2031-05-02T17:00:00+00:00"
# Each write-back's step inputs, the fields its `data` then has (besides ghl_contact_id and
# what the step fills from the event), and what DripJobs then holds (customer Ann has a
# scheduled appointment and a deal before). The appointment steps are written as configs from
# before the inputs took the contract's names were: `appointment_*` is read as start/end/title,
# and the DripJobs appointment id and status (no write-back field) are accepted, left out.
EFFECTS: dict[str, tuple[dict[str, str], dict[str, str], Callable[[Any], object], object]] = {
    "create_lead": (
        {"first_name": "Bea", "email": "bea@example.com", "phone": "+14155550199"},
        {"first_name": "Bea", "email": "bea@example.com", "phone": "+14155550199"},
        lambda m: sorted(c.fields.get("email") for c in m.customers.values()),
        ["ann.lee@example.com", "bea@example.com"],
    ),
    "move_deal": (
        {"stage": "Won", **DRIPJOBS_SAMPLES},
        {"stage": "Won", **DRIPJOBS_SAMPLES},
        lambda m: [d.stage for d in m.deals.values()],
        ["Won"],
    ),
    "create_appointment_request": (
        {
            "appointment_title": "Estimate visit",
            "appointment_start": START,
            **DRIPJOBS_SAMPLES,
        },
        {"title": "Estimate visit", "start": START, **DRIPJOBS_SAMPLES},
        lambda m: sorted((a.title, a.start) for a in m.appointments.values()),
        sorted([("Estimate", "2031-04-01T15:00:00+00:00"), ("Estimate visit", START)]),
    ),
    "update_appointment": (
        {
            "appointment_id": "dj_a_1",
            "appointment_status": "confirmed",
            "appointment_start": MOVED,
            **DRIPJOBS_SAMPLES,
        },
        {"start": MOVED, **DRIPJOBS_SAMPLES},
        lambda m: [a.start for a in m.appointments.values()],
        [MOVED],
    ),
}


@pytest.mark.parametrize("write_back", WRITE_BACKS)
async def test_a_recipe_write_back_takes_effect_in_dripjobs(
    rig: Rig, emulator: Emulator, write_back: str
) -> None:
    """What the emulator's Zap (built per docs/two-way.md) does with each recipe write-back."""
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=emulator.app), base_url=EMULATOR
    ) as dripjobs:  # a DripJobs user: customer Ann, her appointment and her deal
        lead = {"first_name": "Ann", **DRIPJOBS_SAMPLES}
        customer = (await dripjobs.post("/dripjobs/_admin/leads", json=lead)).json()
        ann = customer["id"]
        visit = {"customer_id": ann, "start": "2031-04-01T15:00:00+00:00",
                 "end": "2031-04-01T16:00:00+00:00"}  # fmt: skip
        assert (await dripjobs.post("/dripjobs/_admin/appointments", json=visit)).is_success
        move = {"customer_id": ann, "stage": "Estimate Scheduled"}
        assert (await dripjobs.post("/dripjobs/_admin/deals/move", json=move)).is_success
    inputs, sent, held, expected = EFFECTS[write_back]
    made = await _records(rig, set())

    action = f"dripjobs.{write_back}"
    sender = await _run_recipe(rig, emulator, "effect", action, inputs, made["contact"])

    entry = await _delivered(rig, emulator, sender, ACTIONS[action], made)
    assert sent.items() <= entry["data"].items()
    assert entry["error"] is None
    assert held(emulator.state.model) == expected
