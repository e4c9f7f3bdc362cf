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
