"""First-time matching on live events: a new customer who is two GHL contacts is parked with
both ids, never written to either; one who is one contact is linked. SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from ghlsync._clock import FakeClock
from ghlsync.dripjobs._keys import fold_keys
from ghlsync.engine import Delivery, accept, list_dead_letters
from ghlsync.engine._failures import classify_failure
from ghlsync.engine._worker import Worker
from ghlsync.engine.flows.to_ghl._contact_match import AmbiguousContactError
from ghlsync.mapping import AppConfig, Mapper
from ghlsync.store import begin_immediate
from tests._engine_flows_kit import CUSTOMER, Flow, make_client
from tests._sandbox import InProcessSandbox


async def _make(flow: Flow, **fields: Any) -> str:
    assert flow.ctx.client is not None
    made = await flow.ctx.client.request(
        "POST",
        "/contacts/",
        key=flow.ctx.location_id,
        version="2021-07-28",
        json={"locationId": flow.ctx.location_id, **fields},
    )
    return str(made["contact"]["id"])


def _allow_duplicates(flow: Flow) -> None:
    location = flow.state.location(flow.ctx.location_id)
    assert location is not None
    location.allow_duplicate_contact = True


def _contacts(flow: Flow) -> dict[str, dict[str, Any]]:
    return {c["id"]: dict(c) for c in flow.records("contacts")}


async def test_email_on_one_contact_and_phone_on_another_is_parked(flow: Flow) -> None:
    by_email = await _make(flow, email=CUSTOMER["email"], tags=["vip"])
    by_phone = await _make(flow, phone=CUSTOMER["phone"])
    before = _contacts(flow)

    with pytest.raises(AmbiguousContactError) as caught:
        await flow.sync("customer.created", **CUSTOMER)

    assert set(caught.value.ghl_ids) == {by_email, by_phone}
    assert by_email in str(caught.value) and by_phone in str(caught.value)
    assert _contacts(flow) == before  # neither contact written, none created
    assert flow.row("contact", CUSTOMER["customer_id"]) is None  # no pending row left behind


async def test_duplicates_allowed_two_contacts_with_the_email_are_parked(flow: Flow) -> None:
    _allow_duplicates(flow)
    first = await _make(flow, email=CUSTOMER["email"])
    second = await _make(flow, email=CUSTOMER["email"], firstName="Twin")
    before = _contacts(flow)

    with pytest.raises(AmbiguousContactError) as caught:
        await flow.sync("customer.created", **CUSTOMER)

    assert set(caught.value.ghl_ids) == {first, second}
    assert _contacts(flow) == before
    assert ("POST", "/contacts/upsert") not in flow.requests()  # never merged into one
    assert flow.row("contact", CUSTOMER["customer_id"]) is None


async def test_duplicates_allowed_one_existing_contact_is_linked(flow: Flow) -> None:
    _allow_duplicates(flow)
    person = await _make(flow, phone=CUSTOMER["phone"], tags=["vip"])

    [out] = await flow.sync("customer.created", **CUSTOMER)

    assert (out.action, out.ghl_id) == ("created", person)
    [contact] = flow.records("contacts")  # linked, no duplicate
    assert contact["email"] == CUSTOMER["email"]
    assert sorted(contact["tags"]) == ["source:google", "vip"]
    row = flow.row("contact", CUSTOMER["customer_id"])
    assert row is not None and (row.state, row.ghl_id) == ("confirmed", person)


async def test_refused_create_whose_other_field_is_the_same_person_is_linked(flow: Flow) -> None:
    person = await _make(flow, email=CUSTOMER["email"], phone=CUSTOMER["phone"])

    [out] = await flow.sync("customer.created", **CUSTOMER)

    assert out.ghl_id == person and len(flow.records("contacts")) == 1


def test_the_dead_letter_reason_names_both_contacts() -> None:
    error = AmbiguousContactError("C1", {"email": "ghl_a", "phone": "ghl_b"})
    failure = classify_failure(error, entity_type="contact", event="customer.created")
    assert failure.kind == "dead"
    assert "ghl_a (by email)" in failure.reason and "ghl_b (by phone)" in failure.reason
    assert "not guessed" in failure.reason


async def test_worker_parks_the_live_event_in_the_dead_letter_queue(
    flows_store: sa.Engine, sandbox_asgi: InProcessSandbox
) -> None:
    loc = sandbox_asgi.location_id
    async with make_client(
        sandbox_asgi.url, sandbox_asgi.token, loc, sandbox_asgi.transport()
    ) as client:
        a = await client.request(
            "POST", "/contacts/", key=loc, version="2021-07-28",
            json={"locationId": loc, "email": CUSTOMER["email"]},
        )  # fmt: skip
        b = await client.request(
            "POST", "/contacts/", key=loc, version="2021-07-28",
            json={"locationId": loc, "phone": CUSTOMER["phone"]},
        )  # fmt: skip
        _deliver(flows_store, loc, "customer.created", CUSTOMER)
        worker = Worker(flows_store, client, Mapper(AppConfig.default()), clock=FakeClock())
        while await worker.run_once():
            pass

    [dead] = list_dead_letters(flows_store)
    assert dead.source_id == CUSTOMER["customer_id"]
    assert a["contact"]["id"] in dead.reason and b["contact"]["id"] in dead.reason
    location = sandbox_asgi.state.location(loc)
    assert location is not None and len(location.contacts) == 2


def _deliver(engine: sa.Engine, location: str, event: str, payload: dict[str, Any]) -> None:
    key = Mapper(AppConfig.default()).entity_key(event, payload)
    delivery = Delivery(
        connection_id="conn1",
        location_id=location,
        event=event,
        delivery_id="d1",
        payload=fold_keys(payload),
        entity_type=key.type,
        source_id=key.source_id,
        source_updated_at=None,
        received_at=1_699_999_000.0,
    )
    with begin_immediate(engine) as conn:
        accept(conn, delivery)
