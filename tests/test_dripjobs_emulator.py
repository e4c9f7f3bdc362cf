"""The DripJobs emulator: signed catch hooks, dedupe, each action, triggers fired over HTTP."""

from __future__ import annotations

import base64
import subprocess
import sys
import time

import httpx2
import pytest

from ghlsync.dripjobs import sign as receiver_sign
from ghlsync.mapping import AppConfig
from ghlsync.sandbox.dripjobs import DEFAULT_WRITEBACK_SECRET, signature, verify
from ghlsync.sandbox.dripjobs._ops import OTHER_TRIGGERS
from ghlsync.sandbox.dripjobs._signature import SignatureError, key_of
from tests._dripjobs_kit import (
    LoopbackReceiver,
    emulator_with_receiver,
    sign_writeback,
    wait_fired,
    wait_until,
    writeback,
)

LEAD = {
    "first_name": "Ada",
    "last_name": "Lovelace",
    "email": "ada@example.com",
    "phone": "+15550102030",
    "lead_source": "GHL form",
    "ghl_contact_id": "ghl_c_1",
}

# The Standard Webhooks specification's published test vector.
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_signature_matches_the_standard_webhooks_test_vector() -> None:
    key = key_of(SPEC_SECRET)
    assert signature(key, SPEC_ID, str(SPEC_TIMESTAMP), SPEC_BODY) == SPEC_SIGNATURE
    assert sign_writeback(SPEC_SECRET, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY) == SPEC_SIGNATURE
    headers = {
        "webhook-id": SPEC_ID,
        "webhook-timestamp": str(SPEC_TIMESTAMP),
        "webhook-signature": f"v1,bm90IGl0 {SPEC_SIGNATURE}",  # any listed v1 may match
    }
    assert verify(key, headers, SPEC_BODY, now=SPEC_TIMESTAMP + 10) == SPEC_ID
    with pytest.raises(SignatureError, match="tolerance"):
        verify(key, headers, SPEC_BODY, now=SPEC_TIMESTAMP + 301)
    with pytest.raises(SignatureError, match="no v1"):
        verify(key, headers, SPEC_BODY + b" ", now=SPEC_TIMESTAMP)


def test_the_emulator_accepts_what_ghlsyncs_own_signer_produces() -> None:
    header = receiver_sign(DEFAULT_WRITEBACK_SECRET, "wb_1", 1_800_000_000, b"{}")
    headers = {"webhook-id": "wb_1", "webhook-timestamp": "1800000000", "webhook-signature": header}
    assert verify(key_of(DEFAULT_WRITEBACK_SECRET), headers, b"{}", now=1_800_000_000) == "wb_1"


def test_bad_signatures_are_refused_401_and_change_nothing() -> None:
    other = "whsec_" + base64.b64encode(b"some other key").decode()
    with emulator_with_receiver() as (server, state, receiver):
        assert writeback(server.url, "create_lead", LEAD, secret=other).status_code == 401
        stale = int(time.time()) - 3600
        assert writeback(server.url, "create_lead", LEAD, timestamp=stale).status_code == 401
        unsigned = httpx2.post(f"{server.url}/dripjobs/hooks/catch/create_lead", json={})
        assert unsigned.status_code == 401
        counters = state.counters()
        assert counters["bad_signatures"] == 3
        assert counters["writebacks"] == 0 and state.model.customers == {}
        assert receiver.received == []


def test_create_lead_makes_a_customer_and_fires_new_lead_created_to_ghlsync() -> None:
    with emulator_with_receiver() as (server, state, receiver):
        answer = writeback(server.url, "create_lead", LEAD, webhook_id="wb_lead_1")
        assert answer.status_code == 200 and answer.json()["status"] == "success"
        wait_fired(state)
        [customer] = state.model.customers.values()
        assert customer.fields["ghl_contact_id"] == "ghl_c_1" and customer.origin == "writeback"
        [hit] = receiver.received
        assert hit.event == "lead.created"
        assert hit.headers["authorization"] == "Bearer receiver-secret"
        assert hit.fields["customer_id"] == customer.id == "dj_c_1"
        assert hit.fields["ghl_contact_id"] == "ghl_c_1"
        assert hit.fields["email"] == "ada@example.com" and hit.fields["first_name"] == "Ada"
        assert hit.fields["delivery_id"] and hit.fields["updated_at"].endswith("Z")
        assert state.counters()["leads_per_email"] == {"ada@example.com": 1}


def test_a_repeated_webhook_id_is_applied_once() -> None:
    with emulator_with_receiver() as (server, state, receiver):
        first = writeback(server.url, "create_lead", LEAD, webhook_id="wb_same")
        again = writeback(server.url, "create_lead", LEAD, webhook_id="wb_same")
        assert first.status_code == again.status_code == 200
        assert first.json()["id"] == again.json()["id"]  # the same Zap run
        wait_fired(state)
        counters = state.counters()
        assert counters["writebacks"] == 1 and counters["duplicate_webhook_ids"] == 1
        assert counters["duplicates"] == 0 and len(state.model.leads) == 1
        assert [hit.event for hit in receiver.received] == ["lead.created"]


def test_a_second_lead_with_a_known_email_attaches_and_counts_as_a_duplicate() -> None:
    with emulator_with_receiver() as (server, state, receiver):
        writeback(server.url, "create_lead", LEAD)
        echo = {"email": "ADA@example.com", "first_name": "Ada"}  # nothing new: an echo
        writeback(server.url, "create_lead", echo)
        wait_fired(state)
        assert len(state.model.customers) == 1 and len(state.model.leads) == 2
        counters = state.counters()
        assert counters["duplicate_leads"] == 1 and counters["no_change"] == 1
        assert [hit.fields["customer_id"] for hit in receiver.received] == ["dj_c_1", "dj_c_1"]


def test_appointment_request_then_update_moves_the_nearest_scheduled() -> None:
    request = {
        "ghl_contact_id": "ghl_c_9",
        "ghl_appointment_id": "ghl_a_1",
        "email": "grace@example.com",
        "first_name": "Grace",
        "start": "2031-03-01T10:00:00-05:00",
        "end": "2031-03-01T11:00:00-05:00",
        "title": "Estimate",
    }
    with emulator_with_receiver() as (server, state, receiver):
        assert writeback(server.url, "create_appointment_request", request).status_code == 200
        later = {
            **request,
            "start": "2031-03-02T10:00:00-05:00",
            "end": "2031-03-02T11:00:00-05:00",
        }
        assert writeback(server.url, "update_appointment", later).status_code == 200
        same = {**later, "start": "2031-03-02T15:00:00Z", "end": "2031-03-02T16:00:00Z"}
        assert writeback(server.url, "update_appointment", same).status_code == 200
        wait_fired(state)
        [customer] = state.model.customers.values()
        assert customer.fields["ghl_contact_id"] == "ghl_c_9"
        [appointment] = state.model.appointments.values()
        assert appointment.start == "2031-03-02T10:00:00-05:00"
        assert appointment.ghl_appointment_id == "ghl_a_1"
        assert [d.stage for d in state.model.deals.values()] == ["Appointment Requested"]
        events = [hit.event for hit in receiver.received]
        assert events == ["appointment.scheduled", "appointment.updated"]  # the same instant: none
        scheduled, updated = receiver.received
        assert scheduled.fields["appointment_id"] == updated.fields["appointment_id"] == "dj_a_1"
        assert scheduled.fields["customer_id"] == customer.id
        assert scheduled.fields["appointment_status"] == "scheduled"
        assert updated.fields["appointment_start"] == "2031-03-02T10:00:00-05:00"
        assert state.counters()["no_change"] == 1


def test_update_appointment_without_a_match_is_logged_as_an_error() -> None:
    with emulator_with_receiver() as (server, state, receiver):
        answer = writeback(server.url, "update_appointment", {"email": "nobody@example.com"})
        assert answer.status_code == 200  # a Catch Hook answers before the action runs
        [entry] = state.writebacks
        assert entry["error"] and state.counters()["errors"] == 1
        assert receiver.received == []


def test_move_deal_creates_the_deal_then_moves_it_and_a_same_stage_move_fires_nothing() -> None:
    with emulator_with_receiver() as (server, state, receiver):
        writeback(server.url, "create_lead", LEAD)
        for stage in ("Estimate Scheduled", "Proposal Sent", "Proposal Sent"):
            move = {"ghl_contact_id": "ghl_c_1", "stage": stage}
            assert writeback(server.url, "move_deal", move).status_code == 200
        wait_fired(state)
        [deal] = state.model.deals.values()
        assert deal.stage == "Proposal Sent" and deal.id == "dj_d_1"
        moves = [hit.fields for hit in receiver.received if hit.event == "deal.stage_changed"]
        assert [m["deal_stage"] for m in moves] == ["Estimate Scheduled", "Proposal Sent"]
        assert {m["deal_id"] for m in moves} == {"dj_d_1"}


def test_injected_faults_apply_nothing_except_a_timeout_which_a_retry_dedupes() -> None:
    with emulator_with_receiver() as (server, state, receiver):
        faults = {"script": ["429", "500", "timeout"], "retry_after": 7, "timeout_seconds": 1}
        httpx2.put(f"{server.url}/dripjobs/_admin/faults", json=faults).raise_for_status()
        throttled = writeback(server.url, "create_lead", LEAD, webhook_id="wb_f")
        assert throttled.status_code == 429 and throttled.headers["retry-after"] == "7"
        assert writeback(server.url, "create_lead", LEAD, webhook_id="wb_f").status_code == 500
        assert state.model.customers == {}
        with pytest.raises(httpx2.TimeoutException):
            writeback(server.url, "create_lead", LEAD, webhook_id="wb_f", timeout=0.3)
        assert len(state.model.customers) == 1  # applied although the answer never came
        assert writeback(server.url, "create_lead", LEAD, webhook_id="wb_f").status_code == 200
        wait_fired(state)
        counters = state.counters()
        assert counters["faults"] == {"429": 1, "500": 1, "timeout": 1}
        assert counters["writebacks"] == 1 and counters["duplicate_webhook_ids"] == 1
        assert len(receiver.received) == 1


def test_firing_retries_429_and_5xx_with_the_same_delivery_id() -> None:
    receiver = LoopbackReceiver(script=[429, 503, 500], retry_after="0")
    with emulator_with_receiver(receiver) as (server, state, _):
        writeback(server.url, "create_lead", LEAD)
        wait_fired(state)
        assert len(receiver.received) == 4
        assert len({hit.fields["delivery_id"] for hit in receiver.received}) == 1
        [entry] = state.fired
        assert entry["status"] == "delivered" and entry["attempts"] == 4


def test_firing_gives_up_on_a_4xx_other_than_429() -> None:
    receiver = LoopbackReceiver(script=[400])
    with emulator_with_receiver(receiver) as (server, state, _):
        writeback(server.url, "create_lead", LEAD)
        wait_fired(state)
        assert len(receiver.received) == 1 and state.counters()["fire_failed"] == 1


def test_firing_never_holds_up_the_catch_hook_answer() -> None:
    receiver = LoopbackReceiver()
    receiver.gate.clear()  # ghlsync "hangs": the trigger cannot be delivered yet
    with emulator_with_receiver(receiver) as (server, state, _):
        assert writeback(server.url, "create_lead", LEAD).status_code == 200
        assert state.counters()["fire_pending"] == 1 and receiver.received == []
        receiver.gate.set()
        wait_fired(state)
        assert [hit.event for hit in receiver.received] == ["lead.created"]


def test_a_dripjobs_user_at_work_fires_the_matching_triggers() -> None:
    with emulator_with_receiver() as (server, state, receiver):
        admin = f"{server.url}/dripjobs/_admin"
        lead = httpx2.post(f"{admin}/leads", json={"first_name": "Lin", "email": "lin@example.com"})
        assert lead.status_code == 201
        customer_id = lead.json()["id"]
        edit = httpx2.patch(f"{admin}/customers/{customer_id}", json={"phone": "555-010-9999"})
        assert edit.json()["changed"] is True
        slot = {"start": "2031-05-01T09:00:00Z", "end": "2031-05-01T10:00:00Z"}
        booked = httpx2.post(f"{admin}/appointments", json={"customer_id": customer_id, **slot})
        appointment_id = booked.json()["id"]
        moved = {"start": "2031-05-02T09:00:00Z", "end": "2031-05-02T10:00:00Z"}
        httpx2.patch(f"{admin}/appointments/{appointment_id}", json=moved).raise_for_status()
        cancel = {"status": "canceled"}
        httpx2.patch(f"{admin}/appointments/{appointment_id}", json=cancel).raise_for_status()
        move = {"customer_id": customer_id, "stage": "Won"}
        httpx2.post(f"{admin}/deals/move", json=move).raise_for_status()
        wait_fired(state)
        events = [hit.event for hit in receiver.received]
        assert events == [
            "lead.created",
            "customer.updated",
            "appointment.scheduled",
            "appointment.updated",
            "appointment.canceled",
            "deal.stage_changed",
        ]
        assert "ghl_contact_id" not in receiver.received[0].fields
        assert receiver.received[1].fields["phone"] == "555-010-9999"
        stamps = [hit.fields["updated_at"] for hit in receiver.received]
        assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
        view = httpx2.get(f"{admin}/state").json()
        assert view["appointments"][0]["status"] == "canceled"
        assert view["customers"][0]["origin"] == "user"


def test_every_other_zapier_trigger_fires_for_a_customer_with_its_fields() -> None:
    with emulator_with_receiver() as (server, state, receiver):
        admin = f"{server.url}/dripjobs/_admin"
        lead = httpx2.post(f"{admin}/leads", json={"first_name": "Lin", "email": "lin@example.com"})
        customer_id = lead.json()["id"]
        for event in OTHER_TRIGGERS:
            body = {"customer_id": customer_id, "fields": {"proposal_amount": "1200"}}
            httpx2.post(f"{admin}/triggers/{event}", json=body).raise_for_status()
        unknown = httpx2.post(f"{admin}/triggers/invoice.paid", json={"customer_id": customer_id})
        assert unknown.status_code == 404
        wait_fired(state)
        fired = [hit for hit in receiver.received if hit.event != "lead.created"]
        assert [hit.event for hit in fired] == list(OTHER_TRIGGERS)
        assert {hit.fields["customer_id"] for hit in fired} == {customer_id}
        assert {hit.fields["email"] for hit in fired} == {"lin@example.com"}
        assert fired[0].fields["proposal_amount"] == "1200"
        assert set(OTHER_TRIGGERS) <= set(AppConfig.default().events)  # ghlsync routes each


def test_admin_settings_mask_secrets_and_reject_a_bad_writeback_secret() -> None:
    with emulator_with_receiver() as (server, _state, _):
        admin = f"{server.url}/dripjobs/_admin"
        shown = httpx2.get(f"{admin}/settings").json()
        assert shown["secret"] == "…" and shown["writeback_secret"] == "whsec_…"
        bad = httpx2.put(f"{admin}/settings", json={"writeback_secret": "not-whsec"})
        assert bad.status_code == 422
        other = "whsec_" + base64.b64encode(b"rotated").decode()
        httpx2.put(f"{admin}/settings", json={"writeback_secret": other}).raise_for_status()
        assert writeback(server.url, "create_lead", LEAD).status_code == 401
        assert writeback(server.url, "create_lead", LEAD, secret=other).status_code == 200


def test_the_mount_skips_the_ghl_gate_and_leaves_ghl_routes_gated() -> None:
    with emulator_with_receiver() as (server, _state, _):
        assert httpx2.get(f"{server.url}/dripjobs/_admin/counters").status_code == 200
        assert httpx2.get(f"{server.url}/contacts/abc").status_code == 401
        assert httpx2.post(f"{server.url}/dripjobs/hooks/catch/nope", json={}).status_code == 404


def test_cli_serves_the_emulator_with_the_sandbox() -> None:
    command = [sys.executable, "-c", "from ghlsync.cli import main; main()", "sandbox"]
    command += ["--port", "0", "--dripjobs", "--dripjobs-target", "http://127.0.0.1:9"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(12)]
        url = lines[0].split(" on ")[1].strip()
        wait_until(lambda: _answers(f"{url}/dripjobs/_admin/settings"), "the CLI server")
        settings = httpx2.get(f"{url}/dripjobs/_admin/settings").json()
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
    banner = "".join(lines)
    assert "/dripjobs/hooks/catch/<action>" in banner and DEFAULT_WRITEBACK_SECRET in banner
    assert "http://127.0.0.1:9/hooks/dripjobs/<event>" in banner
    assert settings["ghlsync_url"] == "http://127.0.0.1:9"


def _answers(url: str) -> bool:
    try:
        return httpx2.get(url).status_code == 200
    except httpx2.TransportError:
        return False


def test_the_public_names_are_pinned() -> None:
    import ghlsync.sandbox.dripjobs as package

    assert sorted(package.__all__) == [
        "DEFAULT_WRITEBACK_SECRET",
        "DripJobsMount",
        "DripJobsState",
        "Settings",
        "SignatureError",
        "create_dripjobs_app",
        "mount_dripjobs",
        "signature",
        "verify",
    ]
    assert all(hasattr(package, name) for name in package.__all__)
