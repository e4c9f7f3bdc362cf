"""Two-way sync rules, one test each: GHL-only changes survive, true conflicts follow the
owner rule and are audited, what DripJobs cannot take is kept, order and tombstones."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from ghlsync.engine.flows.to_dripjobs._decide import GHLWork, decide
from ghlsync.store import begin_immediate
from ghlsync.store._tables_engine import audit_log
from ghlsync.store._tables_twoway import ghl_changes, writeback_outbox
from tests._twoway_kit import TwoWay, with_writeback

PHONE_DJ = "+14155552671"
PHONE_GHL = "+14155550000"
PHONE_DJ2 = "+14155559999"


async def dj_customer(tw: TwoWay, **extra: Any) -> str:
    """A DripJobs customer synced to GHL; its GHL id."""
    tw.dripjobs("customer.created", "dj_1", first_name="Ann", email="ann@x.io", phone=PHONE_DJ)
    await tw.settle()
    (contact,) = tw.ghl_contacts()
    return str(contact["id"])


def kept(tw: TwoWay) -> list[dict[str, Any]]:
    with tw.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(ghl_changes))]


def audit_details(tw: TwoWay) -> list[str]:
    with tw.engine.connect() as conn:
        return [str(r.detail or "") for r in conn.execute(sa.select(audit_log))]


async def test_a_field_changed_only_in_ghl_survives_a_later_dripjobs_event(tw: TwoWay) -> None:
    ghl_id = await dj_customer(tw)
    tw.clock.advance(10)
    await tw.ghl_user("PUT", f"/contacts/{ghl_id}", {"phone": PHONE_GHL})
    await tw.settle()
    assert tw.outbox() == []  # DripJobs has no action for a phone change: kept, not dropped
    (change,) = kept(tw)
    assert change["side"] == "ghl" and PHONE_GHL in change["detail"]
    tw.clock.advance(10)
    tw.dripjobs("customer.updated", "dj_1", first_name="Anna", email="ann@x.io", phone=PHONE_DJ)
    await tw.settle()
    (contact,) = tw.ghl_contacts()
    assert contact["firstName"] == "Anna"
    assert contact["phone"] == PHONE_GHL, (
        "a DripJobs event that did not change the phone overwrote GHL's"
    )


@pytest.mark.parametrize(
    ("owner", "dj_later", "winner"),
    [
        ("dripjobs", False, PHONE_DJ2),
        ("ghl", True, PHONE_GHL),
        ("newest", True, PHONE_DJ2),
        ("newest", False, PHONE_GHL),
    ],
)
async def test_a_true_conflict_follows_the_owner_rule_and_is_audited(
    tw: TwoWay, owner: str, dj_later: bool, winner: str
) -> None:
    tw.reconfigure(with_writeback(tw.config, default_owner=owner, fields=_no_owners(tw)))
    start = tw.clock.now()
    ghl_id = await dj_customer(tw)
    tw.clock.advance(100)
    await tw.ghl_user("PUT", f"/contacts/{ghl_id}", {"phone": PHONE_GHL})
    await tw.settle()
    tw.clock.advance(100)
    dj_time = tw.clock.now() if dj_later else start + 50  # DripJobs' own change time
    tw.dripjobs(
        "customer.updated",
        "dj_1",
        first_name="Ann",
        email="ann@x.io",
        phone=PHONE_DJ2,
        updated_at=dj_time,
    )
    await tw.settle()
    (contact,) = tw.ghl_contacts()
    assert contact["phone"] == winner
    lines = [d for d in audit_details(tw) if d.startswith("conflict phone")]
    assert len(lines) == 1 and PHONE_DJ2 in lines[0] and PHONE_GHL in lines[0]
    assert f"(owner {owner})" in lines[0]
    assert tw.outbox() == []


def _no_owners(tw: TwoWay) -> Any:
    """The preset's field rules without per-field owners, so `default_owner` decides."""
    fields = tw.config.writeback.fields
    contact = [r.model_copy(update={"owner": None}) for r in fields.contact]
    return fields.model_copy(update={"contact": contact})


async def test_ghl_notes_and_tasks_are_kept_with_their_side(tw: TwoWay) -> None:
    ghl_id = await dj_customer(tw)
    await tw.ghl_user("POST", f"/contacts/{ghl_id}/notes", {"body": "call back Tuesday"})
    await tw.settle()
    assert tw.outbox() == []
    (change,) = kept(tw)
    assert change["entity_type"] == "note" and change["side"] == "ghl"
    assert "call back Tuesday" in change["detail"]


def _decide(tw: TwoWay, kind: str, at: float, **fields: Any) -> str:
    event = {"type": kind, "locationId": "loc1", "id": "g1", **fields}
    work = GHLWork("loc1", "contact", "g1", (kind,), event, at)
    with begin_immediate(tw.engine) as conn:
        return decide(conn, work, tw.config.writeback, now=tw.clock.now()).action


def test_an_older_ghl_event_never_overrides_and_a_delete_wins(tw: TwoWay) -> None:
    assert _decide(tw, "ContactCreate", 10.0, email="g@x.io") == "written_back"
    assert _decide(tw, "ContactUpdate", 20.0, email="g@x.io", phone=PHONE_GHL) == "kept"
    assert _decide(tw, "ContactUpdate", 15.0, email="g@x.io", phone=PHONE_DJ) == "skipped"
    assert _decide(tw, "ContactDelete", 30.0, email="g@x.io") == "kept"
    assert _decide(tw, "ContactUpdate", 25.0, email="g@x.io", phone=PHONE_DJ2) == "skipped"
    assert _decide(tw, "ContactDelete", 31.0, email="g@x.io") == "skipped"
    with tw.engine.connect() as conn:
        rows = conn.execute(sa.select(writeback_outbox.c.action)).all()
    assert [r.action for r in rows] == ["create_lead"]
    assert [c["event"] for c in kept(tw)] == ["ContactUpdate", "ContactDelete"]


def test_a_ghl_retry_of_contact_create_queues_one_lead(tw: TwoWay) -> None:
    for _ in range(3):
        _decide(tw, "ContactCreate", 10.0, email="g@x.io")
    with tw.engine.connect() as conn:
        count = conn.execute(sa.select(sa.func.count()).select_from(writeback_outbox)).scalar()
    assert count == 1


async def test_an_action_without_url_is_recorded_as_skipped(tw: TwoWay) -> None:
    actions = dict(tw.config.writeback.actions)
    actions["create_lead"] = actions["create_lead"].model_copy(update={"url": None})
    tw.reconfigure(with_writeback(tw.config, actions=actions))
    await tw.ghl_user(
        "POST", "/contacts/", {"locationId": tw.sandbox.location_id, "email": "s@x.io"}
    )
    await tw.settle()
    (row,) = tw.outbox()
    assert row["status"] == "skipped" and "no URL" in row["last_error"]
    assert tw.hook.received == []


async def test_a_ghl_change_whose_webhook_has_not_arrived_is_not_lost(tw: TwoWay) -> None:
    """GHL's webhook lags: the DripJobs update reads GHL first, and the newer GHL change wins."""
    start = tw.clock.now()
    ghl_id = await dj_customer(tw)
    tw.clock.advance(100)
    await tw.ghl_user("PUT", f"/contacts/{ghl_id}", {"phone": PHONE_GHL})
    held = list(tw.ghl_events)
    tw.ghl_events.clear()  # not delivered yet
    tw.dripjobs(
        "customer.updated",
        "dj_1",
        first_name="Ann",
        email="ann@x.io",
        phone=PHONE_DJ2,
        updated_at=start + 50,  # changed in DripJobs before the GHL change
    )
    await tw.settle()
    assert tw.ghl_contacts()[0]["phone"] == PHONE_GHL
    assert any(d.startswith("conflict phone") for d in audit_details(tw))
    tw.ghl_events.extend(held)
    await tw.settle()
    assert tw.ghl_contacts()[0]["phone"] == PHONE_GHL and tw.outbox() == []
