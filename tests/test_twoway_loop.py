"""Two-way sync, the loop: GHL contact → one create_lead; DripJobs' lead.created links
without a GHL write; our own GHL writes coming back as webhooks write nothing back."""

from __future__ import annotations

from typing import Any

from tests._twoway_kit import HOOK, SECRET, TwoWay, spec_verify


async def ghl_user_creates(tw: TwoWay, **fields: Any) -> str:
    """A contact made in GHL by someone else (a form, a user): through the API."""
    body = {"locationId": tw.sandbox.location_id, **fields}
    answer = await tw.worker.client.request(
        "POST", "/contacts/", key=tw.sandbox.location_id, version="2021-07-28", json=body
    )
    return str(answer["contact"]["id"])


async def test_ghl_contact_becomes_one_lead_and_its_echo_writes_nothing(tw: TwoWay) -> None:
    ghl_id = await ghl_user_creates(tw, firstName="Ada", lastName="Lovelace", email="ada@x.io")
    duplicate = dict(tw.ghl_events[0])
    tw.ghl(duplicate)  # GHL retries its webhook: same webhookId, deduped by the inbox
    await tw.settle()
    leads = [r for r in tw.outbox() if r["action"] == "create_lead"]
    assert len(leads) == 1 and leads[0]["status"] == "delivered"
    assert tw.hook.actions() == ["create_lead"]
    (sent,) = tw.hook.received
    assert sent["body"]["data"] == {
        "email": "ada@x.io",
        "first_name": "Ada",
        "ghl_contact_id": ghl_id,
        "last_name": "Lovelace",
    }
    assert sent["headers"]["webhook-id"] == sent["body"]["id"] == leads[0]["id"]
    writes = tw.ghl_writes()
    # DripJobs fires New Lead Created for our lead, carrying the ghl_contact_id we sent.
    tw.dripjobs(
        "lead.created",
        "dj_c_1",
        first_name="Ada",
        last_name="Lovelace",
        email="ada@x.io",
        ghl_contact_id=ghl_id,
    )
    await tw.settle()
    assert tw.ghl_writes() == writes, "the lead.created echo wrote to GHL"
    assert len(tw.hook.applied) == 1, "a second write-back went out"
    assert len(tw.ghl_contacts()) == 1


async def test_a_dripjobs_customer_written_to_ghl_is_not_written_back(tw: TwoWay) -> None:
    tw.dripjobs(
        "customer.created", "dj_c_9", first_name="Bo", email="bo@x.io", phone="+1 415 555 2671"
    )
    await tw.settle()
    assert len(tw.ghl_contacts()) == 1
    assert tw.outbox() == [] and tw.hook.received == []
    tw.dripjobs("customer.updated", "dj_c_9", first_name="Bob", email="bo@x.io")
    await tw.settle()
    assert tw.ghl_contacts()[0]["firstName"] == "Bob"
    assert tw.outbox() == [], "our own GHL write came back as a write-back (echo)"


async def test_signature_matches_the_spec_verifier(tw: TwoWay) -> None:
    await ghl_user_creates(tw, firstName="Cy", email="cy@x.io")
    await tw.settle()
    (sent,) = tw.hook.received
    assert sent["url"] == HOOK + "create_lead"
    assert sent["headers"]["webhook-signature"].startswith("v1,")
    assert spec_verify(SECRET, sent["headers"], _raw(sent["body"]), int(tw.clock.now()))


def _raw(body: dict[str, Any]) -> bytes:
    import json

    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


async def test_an_appointment_booked_in_ghl_becomes_a_request_and_a_reschedule_an_update(
    tw: TwoWay,
) -> None:
    tw.dripjobs("customer.created", "dj_c_5", first_name="Di", email="di@x.io")
    await tw.settle()
    (contact,) = tw.ghl_contacts()
    booked = await tw.ghl_user(
        "POST",
        "/calendars/events/appointments",
        {
            "calendarId": tw.sandbox.calendar_id,
            "locationId": tw.sandbox.location_id,
            "contactId": contact["id"],
            "title": "Estimate",
            "startTime": "2027-02-01T15:00:00+00:00",
            "endTime": "2027-02-01T16:00:00+00:00",
            "ignoreFreeSlotValidation": True,
        },
    )
    appointment_id = str(booked.get("id") or booked["appointment"]["id"])
    await tw.settle()
    (request,) = tw.hook.applied.values()
    assert request["type"] == "create_appointment_request"
    data = request["data"]
    assert data["ghl_appointment_id"] == appointment_id
    assert data["ghl_contact_id"] == contact["id"] and data["email"] == "di@x.io"
    assert data["title"] == "Estimate" and data["start"].startswith("2027-02-01T15:00")
    # DripJobs answers with appointment.scheduled for the request we made: linked, no GHL write.
    writes = tw.ghl_writes()
    scheduled = dict(
        appointment_id="dj_a_1",
        appointment_title="Estimate",
        appointment_start="2027-02-01T15:00:00+00:00",
        appointment_end="2027-02-01T16:00:00+00:00",
        appointment_status="scheduled",
    )
    tw.dripjobs("appointment.scheduled", "dj_c_5", **scheduled)
    await tw.settle()
    assert tw.ghl_writes() == writes, "appointment.scheduled echo wrote to GHL"
    # Rescheduled in GHL → update_appointment; DripJobs' appointment.updated writes nothing.
    await tw.ghl_user(
        "PUT",
        f"/calendars/events/appointments/{appointment_id}",
        {"startTime": "2027-02-02T15:00:00+00:00", "endTime": "2027-02-02T16:00:00+00:00"},
    )
    await tw.settle()
    kinds = tw.hook.actions()
    assert kinds == ["create_appointment_request", "update_appointment"]
    update = list(tw.hook.applied.values())[1]["data"]
    assert update["start"].startswith("2027-02-02T15:00")
    writes = tw.ghl_writes()
    moved = dict(scheduled, appointment_start="2027-02-02T15:00:00+00:00")
    moved["appointment_end"] = "2027-02-02T16:00:00+00:00"
    tw.dripjobs("appointment.updated", "dj_c_5", **moved)
    await tw.settle()
    assert tw.ghl_writes() == writes, "appointment.updated echo wrote to GHL"
    assert tw.hook.actions() == kinds


async def test_a_deal_tag_added_in_ghl_moves_the_deal_once(tw: TwoWay) -> None:
    tw.dripjobs("customer.created", "dj_c_6", first_name="Ed", email="ed@x.io")
    await tw.settle()
    (contact,) = tw.ghl_contacts()
    await tw.ghl_user("POST", f"/contacts/{contact['id']}/tags", {"tags": ["deal:won"]})
    await tw.settle()
    (move,) = tw.hook.applied.values()
    assert move["type"] == "move_deal"
    assert move["data"]["stage"] == "won" and move["data"]["ghl_contact_id"] == contact["id"]
    writes = tw.ghl_writes()
    tw.dripjobs("deal.stage_changed", "dj_c_6", deal_id="dj_d_1", deal_stage="won", email="ed@x.io")
    await tw.settle()
    assert tw.ghl_writes() == writes, "deal.stage_changed echo wrote to GHL"
    assert len(tw.hook.applied) == 1
    # A stage moved in DripJobs reaches GHL as a tag and is not written back.
    tw.dripjobs(
        "deal.stage_changed", "dj_c_6", deal_id="dj_d_1", deal_stage="lost", email="ed@x.io"
    )
    await tw.settle()
    tags = tw.ghl_contacts()[0]["tags"]
    assert "deal:lost" in tags and "deal:won" not in tags
    assert len(tw.hook.applied) == 1, "our own tag change was written back"


async def test_a_deal_moved_in_ghl_by_swapping_tags_does_not_bounce_back(tw: TwoWay) -> None:
    tw.dripjobs("customer.created", "dj_c_7", first_name="Fy", email="fy@x.io")
    tw.dripjobs(
        "deal.stage_changed", "dj_c_7", deal_id="dj_d_7", deal_stage="estimate", email="fy@x.io"
    )
    await tw.settle()
    (contact,) = tw.ghl_contacts()
    assert "deal:estimate" in contact["tags"]
    await tw.ghl_user("DELETE", f"/contacts/{contact['id']}/tags", {"tags": ["deal:estimate"]})
    await tw.ghl_user("POST", f"/contacts/{contact['id']}/tags", {"tags": ["deal:proposal"]})
    await tw.settle()
    assert [d["data"]["stage"] for d in tw.hook.applied.values()] == ["proposal"]
    writes = tw.ghl_writes()
    tw.dripjobs(
        "deal.stage_changed", "dj_c_7", deal_id="dj_d_7", deal_stage="proposal", email="fy@x.io"
    )
    await tw.settle()
    assert tw.ghl_writes() == writes, "the deal move came back as a GHL write"
    assert len(tw.hook.applied) == 1
