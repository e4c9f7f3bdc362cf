"""TRIGGERS: every DripJobs event of the mapping and every GHL webhook type naming a location."""

from __future__ import annotations

from pathlib import Path

import pytest

from ghlsync.engine.flows.recipes import TRIGGERS
from ghlsync.engine.flows.recipes._triggers import dripjobs_triggers, event_location
from ghlsync.engine.flows.recipes._triggers_ghl import GHL_TRIGGER_TYPES
from ghlsync.mapping import AppConfig, load_config

ZAPIER_TRIGGERS = {
    "lead.created", "deal.stage_changed", "project.stage_changed", "estimate.scheduled",
    "booking_form.submitted", "custom_event.scheduled", "proposal.accepted", "proposal.rejected",
    "proposal.viewed", "project.completed", "job_costing.completed", "invoice.created",
    "payment.received", "text_message.received", "card_label.changed", "task.created",
}  # fmt: skip
NOT_TRIGGERS = {"INSTALL", "UNINSTALL", "PLAN_CHANGE", "LocationCreate", "LocationUpdate"}


def test_every_preset_event_is_a_trigger_and_each_zapier_trigger_has_one() -> None:
    preset = set(AppConfig.default().events)
    dripjobs = {t.removeprefix("dripjobs.") for t in TRIGGERS if t.startswith("dripjobs.")}

    assert dripjobs == preset
    assert preset >= ZAPIER_TRIGGERS


def test_ghl_triggers_are_the_webhook_types_that_name_a_location() -> None:
    ghl = {t.removeprefix("ghl.") for t in TRIGGERS if t.startswith("ghl.")}

    assert ghl == set(GHL_TRIGGER_TYPES)
    assert len(ghl) == 52
    assert not ghl & NOT_TRIGGERS
    assert {"ContactTagUpdate", "InboundMessage", "OpportunityStageUpdate", "InvoicePaid"} <= ghl


def test_a_trigger_names_its_source_and_the_fields_its_rules_read() -> None:
    card = TRIGGERS["dripjobs.proposal.rejected"]
    fields = {f.name: f for f in card.fields}

    assert (card.side, card.source) == ("dripjobs", "POST /hooks/dripjobs/proposal.rejected")
    assert fields["customer_id"].required
    assert (fields["deal_stage"].type, fields["proposal_amount"].type) == ("string", "number")
    assert fields["email"].type == "email"
    sms = {f.name: f for f in TRIGGERS["dripjobs.text_message.received"].fields}
    assert sms["message_id"].required and sms["customer_id"].required
    assert "message_body" in sms
    tag = TRIGGERS["ghl.ContactTagUpdate"]
    assert tag.source == "GHL webhook ContactTagUpdate -> POST /hooks/ghl"
    assert {"id", "locationId", "tags"} <= {f.name for f in tag.fields}


def test_a_configured_event_becomes_a_trigger(tmp_path: Path) -> None:
    config = tmp_path / "ghlsync.yaml"
    config.write_text("events:\n  job.won: {entity: contact, id: job_customer}\n")
    found = dripjobs_triggers(load_config(config))

    assert found["dripjobs.job.won"].fields[0].name == "job_customer"
    assert "job.won" in found["dripjobs.job.won"].description


@pytest.mark.parametrize(
    ("event", "location"),
    [
        ({"locationId": "L1"}, "L1"),
        ({"altId": "L2", "altType": "location"}, "L2"),
        ({"altId": "C1", "altType": "company"}, None),
        ({}, None),
    ],
)
def test_event_location(event: dict[str, str], location: str | None) -> None:
    assert event_location(event) == location
