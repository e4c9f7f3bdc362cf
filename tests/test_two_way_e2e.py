"""Two-way end to end over HTTP: GHL sandbox ⇄ ghlsync (receiver + worker) ⇄ DripJobs emulator.

Every part is real: the sandbox and the emulator on uvicorn, ghlsync's receiver on uvicorn,
the worker and outbox sender `ghlsync serve` runs, the store on SQLite and PostgreSQL. The
GHL person works through the GHL API (its signed webhooks reach `/hooks/ghl`); the DripJobs
person through the emulator (its triggers reach `/hooks/dripjobs/...`). `TwoWay.since`
counts what ghlsync did in between: a change on one side must cost nothing on that side
(0 echo writes) and exactly the expected writes on the other (0 duplicates).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from ghlsync.demo import PipelineOptions
from ghlsync.demo._twoway import Traffic, TwoWay

START, END = "2031-04-07T10:00:00-05:00", "2031-04-07T11:00:00-05:00"
LATER_START, LATER_END = "2031-04-08T14:00:00-05:00", "2031-04-08T15:00:00-05:00"


@pytest.fixture(autouse=True)
def _quiet_client() -> Iterator[None]:
    """Injected faults make the clients log warnings; they are expected here."""
    logger = logging.getLogger("ghlsync")
    level = logger.level
    logger.setLevel(logging.ERROR)
    yield
    logger.setLevel(level)


def _options(database_url: str) -> PipelineOptions:
    return PipelineOptions(database_url=database_url, drain_timeout=60)


async def test_a_contact_created_in_ghl_becomes_exactly_one_dripjobs_lead(
    database_url: str,
) -> None:
    async with TwoWay(_options(database_url)) as loop:
        mark = loop.mark()
        contact_id = await loop.ghl_create_contact(
            firstName="Ada", lastName="Lovelace", email="ada@example.com", phone="+15125550101"
        )
        await loop.quiesce()
        traffic = await loop.since(mark)
        counters = await loop.dj_counters()
        customers = (await loop.dj_state())["customers"]
    [writeback] = traffic.writebacks
    assert writeback["action"] == "create_lead" and writeback["changed"] is True
    assert writeback["data"]["ghl_contact_id"] == contact_id
    assert writeback["data"]["email"] == "ada@example.com"
    assert [c["ghl_contact_id"] for c in customers] == [contact_id]
    assert counters["leads_per_email"] == {"ada@example.com": 1}
    assert counters["duplicates"] == 0 and counters["duplicate_webhook_ids"] == 0
    # DripJobs fired New Lead Created for our lead; ghlsync linked it and wrote nothing to GHL.
    assert [entry["event"] for entry in traffic.fired] == ["lead.created"]
    assert traffic.ghl_writes == 0


async def test_a_lead_created_in_dripjobs_becomes_exactly_one_ghl_contact(
    database_url: str,
) -> None:
    async with TwoWay(_options(database_url)) as loop:
        mark = loop.mark()
        customer_id = await loop.dj_create_lead(
            first_name="Lin", last_name="Qiao", email="lin@example.com", phone="(512) 555-0102"
        )
        await loop.quiesce()
        traffic = await loop.since(mark)
        contacts = (await loop.ghl_state())["contacts"]
        counters = await loop.dj_counters()
    assert [(c["email"], c["phone"], c["firstName"]) for c in contacts] == [
        ("lin@example.com", "+15125550102", "Lin")
    ]
    assert customer_id == "dj_c_1"
    # GHL's ContactCreate for the contact ghlsync made came back: no write-back to DripJobs.
    assert traffic.writebacks == [] and counters["requests"] == 0
    assert counters["leads_per_email"] == {"lin@example.com": 1}
    assert traffic.ghl_writes >= 1


async def _book_then_move(loop: TwoWay) -> tuple[str, str, Traffic, Traffic]:
    """A GHL contact (settled), an appointment booked for it, then moved; the traffic of each."""
    contact_id = await loop.ghl_create_contact(
        firstName="Grace", lastName="Hopper", email="grace@example.com"
    )
    await loop.quiesce()
    mark = loop.mark()
    appointment_id = await loop.ghl_book(contact_id, START, END, "Estimate")
    await loop.quiesce()
    booked = await loop.since(mark)
    mark = loop.mark()
    await loop.ghl_reschedule(appointment_id, LATER_START, LATER_END)
    await loop.quiesce()
    return contact_id, appointment_id, booked, await loop.since(mark)


async def test_an_appointment_booked_in_ghl_is_requested_and_its_reschedule_updated(
    database_url: str,
) -> None:
    async with TwoWay(_options(database_url)) as loop:
        contact_id, appointment_id, booked, moved = await _book_then_move(loop)
        state = await loop.dj_state()
        counters = await loop.dj_counters()
    [request] = booked.writebacks
    assert request["action"] == "create_appointment_request"
    assert request["data"]["ghl_appointment_id"] == appointment_id
    assert request["data"]["ghl_contact_id"] == contact_id
    assert _instant(request["data"]["start"]) == _instant(START)
    [update] = moved.writebacks
    assert update["action"] == "update_appointment" and update["changed"] is True
    assert _instant(update["data"]["start"]) == _instant(LATER_START)
    [customer] = state["customers"]
    [appointment] = state["appointments"]
    assert appointment["customer_id"] == customer["id"]
    assert appointment["ghl_appointment_id"] == appointment_id
    assert _instant(appointment["start"]) == _instant(LATER_START)
    assert counters["duplicates"] == 0 and counters["no_change"] == 0


async def test_an_appointment_request_does_not_bounce_back_to_ghl(sqlite_url: str) -> None:
    async with TwoWay(_options(sqlite_url)) as loop:
        _, _, booked, moved = await _book_then_move(loop)
        appointments = (await loop.ghl_state())["appointments"]
    assert booked.ghl_writes == 0 and moved.ghl_writes == 0
    assert len(appointments) == 1


async def _deal_both_ways(loop: TwoWay) -> tuple[list[str], Traffic, Traffic]:
    """A DripJobs deal move, then a GHL stage-tag swap: GHL's tags after the first, traffic."""
    customer_id = await loop.dj_create_lead(first_name="Kay", email="kay@example.com")
    await loop.quiesce()
    mark = loop.mark()
    await loop.dj_move_deal(customer_id, "Estimate Scheduled")
    await loop.quiesce()
    from_dripjobs = await loop.since(mark)
    [contact] = (await loop.ghl_state())["contacts"]
    mark = loop.mark()
    await loop.ghl_remove_tags(contact["id"], "deal:estimate scheduled")
    await loop.ghl_add_tags(contact["id"], "deal:proposal sent")
    await loop.quiesce()
    return list(contact["tags"]), from_dripjobs, await loop.since(mark)


async def test_deal_moves_cross_both_ways(sqlite_url: str) -> None:
    async with TwoWay(_options(sqlite_url)) as loop:
        tags_from_dripjobs, from_dripjobs, from_ghl = await _deal_both_ways(loop)
        [deal] = (await loop.dj_state())["deals"]
        [contact] = (await loop.ghl_state())["contacts"]
    assert "deal:estimate scheduled" in tags_from_dripjobs
    assert from_dripjobs.writebacks == []  # the tag ghlsync wrote is not moved back
    [move] = from_ghl.writebacks
    assert move["action"] == "move_deal" and move["data"]["stage"].lower() == "proposal sent"
    assert deal["stage"].lower() == "proposal sent"
    assert [t for t in contact["tags"] if t.startswith("deal:")] == ["deal:proposal sent"]


async def test_a_deal_move_from_ghl_does_not_bounce_back_to_ghl(sqlite_url: str) -> None:
    async with TwoWay(_options(sqlite_url)) as loop:
        _, _, from_ghl = await _deal_both_ways(loop)
    assert from_ghl.ghl_writes == 0


async def test_writebacks_survive_catch_hook_faults_as_one_lead(sqlite_url: str) -> None:
    async with TwoWay(_options(sqlite_url)) as loop:
        faults = {"script": ["429", "500"], "retry_after": 0}
        await loop.dj("PUT", "/faults", faults)
        await loop.ghl_create_contact(firstName="Bo", email="bo@example.com")
        await loop.quiesce()
        counters = await loop.dj_counters()
    assert counters["faults"] == {"429": 1, "500": 1}
    assert counters["requests"] == 3 and counters["writebacks"] == 1
    assert counters["leads_per_email"] == {"bo@example.com": 1}


def _instant(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


async def test_a_writeback_whose_answer_was_lost_is_resent_with_its_webhook_id(
    sqlite_url: str,
) -> None:
    options = PipelineOptions(database_url=sqlite_url, drain_timeout=60, client_timeout=0.5)
    async with TwoWay(options) as loop:
        await loop.dj("PUT", "/faults", {"script": ["timeout"], "timeout_seconds": 1.5})
        await loop.ghl_create_contact(firstName="Cy", email="cy@example.com")
        await loop.quiesce()
        counters = await loop.dj_counters()
        [writeback] = (await loop.since(loop.origin)).writebacks
    # The first POST was applied, its answer held past ghlsync's timeout; the retry carried
    # the same webhook-id, so DripJobs (the Zap) deduped it: one lead.
    assert counters["faults"] == {"timeout": 1}
    assert counters["writebacks"] == 1 and counters["duplicate_webhook_ids"] >= 1
    assert counters["leads_per_email"] == {"cy@example.com": 1}
    assert writeback["repeats"] == counters["duplicate_webhook_ids"]
