"""Reconcile: the children of each mapped contact (tasks, notes, appointments) drifted in GHL
without a webhook are found and `--repair` re-creates deleted ones DripJobs still has; GHL
duplicates are linked in the audit log, never merged; a sweep resumed after a restart still
finds deleted contacts; deal cards moved or deleted in GHL are found (SQLite and
PostgreSQL)."""

from __future__ import annotations

import asyncio
import json

import sqlalchemy as sa

from ghlsync.reconcile import Sweep
from ghlsync.reconcile._progress import seen_ids
from ghlsync.records import lookup
from ghlsync.sandbox import _contacts
from ghlsync.store import begin_immediate
from ghlsync.store._tables_engine import audit_log
from ghlsync.store._tables_sync import id_map
from tests._twoway_kit import TwoWay
from tests.test_reconcile_schedule import _CutClient, _schedule, _StopAfterSweeps
from tests.test_reconcile_sweep import _customers
from tests.test_twoway_opportunity import _card_at, _fresh_pipelines  # noqa: F401

APPOINTMENT = {
    "appointment_title": "Estimate",
    "appointment_start": "2027-02-01T15:00:00+00:00",
    "appointment_end": "2027-02-01T16:00:00+00:00",
}


async def _family(tw: TwoWay) -> dict[str, str]:
    """Customer dj0 with two tasks, a note and an appointment in GHL; GHL ids by DripJobs id."""
    await _customers(tw, 1)
    for task in ("T1", "T2"):
        tw.dripjobs("task.created", "dj0", task_id=task, task_title=task, task_due="2027-01-05")
    tw.dripjobs("note.created", "dj0", note_id="N1", note_body="Gate code 1234")
    tw.dripjobs("appointment.scheduled", "dj0", appointment_id="A1", **APPOINTMENT)
    await tw.settle()
    with tw.engine.connect() as conn:
        rows = conn.execute(sa.select(id_map.c.source_id, id_map.c.ghl_id)).all()
    return {r.source_id: r.ghl_id for r in rows}


def _orphan_task(tw: TwoWay) -> None:
    """A task create that never got its GHL id (pending for two hours)."""
    with begin_immediate(tw.engine) as conn:
        conn.execute(
            sa.insert(id_map).values(
                location_id=tw.sandbox.location_id,
                entity_type="task",
                source_id="T9",
                ghl_id=None,
                state="pending",
                pending_body=json.dumps({"title": "lost"}),
                pending_since=tw.clock.now() - 7200,
                updated_at=tw.clock.now() - 7200,
            )
        )


async def _drift(tw: TwoWay, ids: dict[str, str]) -> None:
    """Made in GHL with no webhook reaching ghlsync: a task and the appointment deleted, the
    note edited."""
    contact = ids["dj0"]
    await tw.ghl_user("DELETE", f"/contacts/{contact}/tasks/{ids['T1']}")
    await tw.ghl_user("PUT", f"/contacts/{contact}/notes/{ids['N1']}", {"body": "Gate code 9"})
    await tw.ghl_user("DELETE", f"/calendars/events/{ids['A1']}", {})
    tw.ghl_events.clear()


def _sweep(tw: TwoWay) -> Sweep:
    return Sweep(tw.engine, tw.worker.client, tw.sandbox.location_id, clock=tw.clock)


async def test_children_drift_is_found_per_kind(tw: TwoWay) -> None:
    ids = await _family(tw)
    await _drift(tw, ids)
    _orphan_task(tw)
    before = len(tw.sandbox.state.requests)

    report = await _sweep(tw).run()

    found = {(d.entity, d.kind, d.dripjobs_ids[0]) for d in report.drifts}
    assert found == {
        ("task", "deleted_in_ghl", "T1"),
        ("appointment", "deleted_in_ghl", "A1"),
        ("note", "changed_in_ghl", "N1"),
        ("task", "store_orphan", "T9"),
    }
    [note] = [d for d in report.drifts if d.entity == "note"]
    assert note.fields is not None
    assert note.fields["body"] == {"ours": "Gate code 1234", "ghl": "Gate code 9"}
    # One list call per kind the contact has children of; T2 (still there) is no drift.
    lists = [r["path"] for r in tw.sandbox.state.requests[before:] if r["method"] == "GET"]
    contact = ids["dj0"]
    assert sorted(p for p in lists if p.startswith(f"/contacts/{contact}/")) == [
        f"/contacts/{contact}/appointments",
        f"/contacts/{contact}/notes",
        f"/contacts/{contact}/tasks",
    ]
    assert report.counts()["task_deleted_in_ghl"] == 1


async def test_repair_recreates_deleted_children_dripjobs_still_has(tw: TwoWay) -> None:
    ids = await _family(tw)
    await _drift(tw, ids)
    location = tw.sandbox.state.locations[tw.sandbox.location_id]

    report = await _sweep(tw).run(repair=True)
    await tw.settle()

    repairs = {(d.entity, d.kind): d.repair or "" for d in report.drifts}
    assert repairs[("task", "deleted_in_ghl")].startswith("queued to be created again: T1")
    assert repairs[("note", "changed_in_ghl")].startswith("recorded on the GHL side")
    titles = sorted(t["title"] for t in location.tasks.values())
    assert titles == ["T1", "T2"]  # T1 is back, under the same contact, T2 untouched
    assert all(t["contactId"] == ids["dj0"] for t in location.tasks.values())
    assert [a["title"] for a in location.appointments.values()] == ["Estimate"]
    with tw.engine.connect() as conn:
        t1 = conn.execute(sa.select(id_map.c.ghl_id).where(id_map.c.source_id == "T1")).scalar()
    assert t1 is not None and t1 != ids["T1"]
    [note] = location.notes.values()
    assert note["body"] == "Gate code 9"  # GHL's edit was not overwritten
    again = await _sweep(tw).run()
    assert again.drifts == []  # nothing left: the edit is known on the GHL side


async def test_duplicates_are_linked_in_the_audit_log_once_and_never_merged(
    tw: TwoWay,
) -> None:
    ids = await _customers(tw, 2)
    state = tw.sandbox.state
    location = state.locations[tw.sandbox.location_id]
    with state.lock:
        twin = _contacts.create(state, location, {"email": "p1@x.io"}, check=False)
    tw.ghl_events.clear()

    first = await _sweep(tw).run(repair=True)
    second = await _sweep(tw).run(repair=True)

    [dup] = [d for d in first.drifts if d.kind == "ghl_duplicate"]
    assert sorted(dup.ghl_ids) == sorted([ids["dj1"], twin["id"]])
    assert dup.repair is not None and dup.repair.startswith("linked")
    assert [d.kind for d in second.drifts] == ["ghl_duplicate"]
    with tw.engine.connect() as conn:
        links = conn.execute(
            sa.select(audit_log.c.source_id, audit_log.c.detail).where(
                audit_log.c.action == "duplicate"
            )
        ).all()
    assert [r.source_id for r in links] == ["dj1"]  # once, though repaired twice
    assert twin["id"] in links[0].detail and ids["dj1"] in links[0].detail
    assert {ids["dj1"], twin["id"]} <= set(location.contacts)  # both still there
    shown = await lookup(tw.engine, tw.config, "dj1")  # `ghlsync record` shows the link
    assert shown.record is not None
    [line] = [e for e in shown.record["timeline"] if e["action"] == "duplicate"]
    assert twin["id"] in line["detail"]


async def test_a_resumed_sweep_still_finds_deleted_contacts(tw: TwoWay) -> None:
    ids = await _customers(tw, 12)  # 3 pages of 5
    state = tw.sandbox.state
    location = state.locations[tw.sandbox.location_id]
    with state.lock:  # gone before the sweep starts: no page will show it
        _contacts.delete(state, location, location.contacts[ids["dj3"]])
    tw.ghl_events.clear()
    tw.clock.advance(10)
    stop = asyncio.Event()
    first = _CutClient(tw.worker.client, stop, at=2)  # SIGTERM while page 2 is in flight
    await asyncio.wait_for(_schedule(tw, first, tw.clock).run(stop), timeout=30)
    walked = seen_ids(tw.engine, tw.sandbox.location_id)
    assert len(walked) == 5  # page 1's mapped contacts, kept with the cursor
    before = len(state.requests)

    stop = asyncio.Event()
    again = _CutClient(tw.worker.client, stop, at=None)
    clock = _StopAfterSweeps(tw.clock, stop, n=1)
    schedule = _schedule(tw, again, clock)
    await asyncio.wait_for(schedule.run(stop), timeout=30)

    (report,) = schedule.reports
    assert report.complete and report.contacts_seen == 11
    assert [(d.kind, d.dripjobs_ids) for d in report.drifts] == [("deleted_in_ghl", ["dj3"])]
    gets = [r["path"] for r in state.requests[before:] if r["method"] == "GET"]
    # Only the missing contact is looked up: page 1's contacts are known to have been walked.
    looked_up = {p for p in gets if p.removeprefix("/contacts/") in ids.values()}
    assert looked_up == {f"/contacts/{ids['dj3']}"}
    assert seen_ids(tw.engine, tw.sandbox.location_id) == set()  # emptied at the end


async def test_deal_cards_moved_or_deleted_in_ghl_are_found(tw: TwoWay) -> None:
    card, stages = await _card_at(tw, "Estimate Scheduled")
    await tw.ghl_user("PUT", f"/opportunities/{card['id']}", {"pipelineStageId": stages["Won"]})
    tw.ghl_events.clear()  # GHL's OpportunityStageUpdate never reached us

    moved = await _sweep(tw).run()

    [drift] = [d for d in moved.drifts if d.entity == "opportunity"]
    assert (drift.kind, drift.dripjobs_ids) == ("changed_in_ghl", ["deal:dj_c_1"])
    assert drift.fields is not None
    assert drift.fields["pipelineStageId"]["ghl"] == stages["Won"]
    await tw.ghl_user("DELETE", f"/opportunities/{card['id']}")
    tw.ghl_events.clear()
    gone = await _sweep(tw).run()
    assert [(d.entity, d.kind) for d in gone.drifts] == [("opportunity", "deleted_in_ghl")]
