"""A card moved in GHL → one `move_deal` write-back with the DripJobs stage name.

`OpportunityStageUpdate` / `OpportunityStatusUpdate` for a card in the configured deal
pipeline (`opportunities:`):
- its status set to one `deal_statuses` maps (won/lost/abandoned → a DripJobs stage) →
  `move_deal` with that stage (this wins when the stage moved too: one write-back);
- else moved to another stage → `move_deal` with the stage's DripJobs name.

The echo rules are those of contacts: a stage or status that is what ghlsync last upserted to
the card (`sync_state` snapshot of `deal:<customer>`, which carries the last status sent) or
what GHL already had (`ghl_records`) is no change; while a DripJobs-side write to that contact
may be in flight (its work row is leased), the decision waits (`WriteInFlightError`). The stage
name comes from the pipeline list kept in the store (`moved_deal_stage`); `sync_ghl` reads it
from GHL first when the stage is not in it (`_pipelines.ensure_stage`). A status change
`deal_statuses` does not map (e.g. reopened), a project card (DripJobs' "Move Deal / Move Job"
Zap action moves the customer's deal: there is no project write-back), or a card of another
pipeline is kept for `status`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from ghlsync.engine.flows.to_dripjobs._echo import WriteInFlightError, linked_sources, written
from ghlsync.engine.flows.to_dripjobs._work import Decision, GHLWork
from ghlsync.engine.flows.to_ghl._opportunity import moved_deal_stage
from ghlsync.engine.outbox._store import enqueue
from ghlsync.engine.state import _ghlrecords
from ghlsync.mapping._opportunity_settings import OpportunitySettings
from ghlsync.mapping._writeback import WritebackSettings
from ghlsync.store._tables_engine import work_items

__all__ = ["decide_opportunity"]

WATCHED = ("pipelineId", "pipelineStageId", "status")
NO_ACTION = "DripJobs has no action for this card change"


def decide_opportunity(
    conn: sa.Connection,
    work: GHLWork,
    settings: WritebackSettings,
    opportunities: OpportunitySettings | None,
    *,
    now: float,
) -> Decision:
    """Decide and record (in the caller's transaction) one GHL card's events."""
    if opportunities is None or not (
        opportunities.pipeline("deal") or opportunities.pipeline("project")
    ):
        return Decision("skipped", "no pipelines configured (opportunities:)")
    record = _ghlrecords.get(conn, work.location_id, "opportunity", work.ghl_id)
    if record.version is not None and work.version is not None and work.version < record.version:
        return Decision("skipped", "older than the GHL version already seen")
    values = work.payload
    contact = str(values.get("contactId") or "")
    customers = linked_sources(conn, work.location_id, "contact", contact) if contact else []
    if _leased(conn, work.location_id, customers):
        raise WriteInFlightError(f"a write of ours to GHL card {work.ghl_id} may be in flight")
    sources = linked_sources(conn, work.location_id, "opportunity", work.ghl_id)
    ours = written(conn, work.location_id, "opportunity", sources)
    changed = {
        name: values[name]
        for name in WATCHED
        if name in values
        and values[name] != ours.get(name)
        and values[name] != record.fields.get(name)
    }
    record.fields.update({n: values[n] for n in WATCHED if n in values})
    if work.version is not None:
        record.version = max(record.version or work.version, work.version)
    decision = Decision("echo", "no change but our own writes")
    status = changed.get("status")
    if "pipelineStageId" in changed or opportunities.status_stage("deal", str(status)):
        decision = _move(conn, work, settings, opportunities, contact, customers, changed, now)
    elif changed:
        decision = Decision("kept", "changed in GHL: " + ", ".join(sorted(changed)))
    if changed and not decision.queued:
        _ghlrecords.keep_change(
            conn,
            work.location_id,
            "opportunity",
            work.ghl_id,
            event=work.events[-1],
            detail=dict(changed),
            reason=NO_ACTION,
            changed_at=work.version if work.version is not None else now,
            now=now,
        )
    _ghlrecords.put(conn, work.location_id, "opportunity", work.ghl_id, record, now=now)
    return decision


def _move(
    conn: sa.Connection,
    work: GHLWork,
    settings: WritebackSettings,
    opportunities: OpportunitySettings,
    contact: str,
    customers: list[str],
    changed: Mapping[str, Any],
    now: float,
) -> Decision:
    """One `move_deal` (deduplicated per card, stage or status, and event version): to the
    stage `deal_statuses` names for a changed status, else to the card's new stage."""
    moved = moved_deal_stage(opportunities, work.location_id, work.payload, conn)
    what = "card moved in GHL" if "pipelineStageId" in changed else "status set in GHL"
    if moved is None or moved[0] != "deal":
        return Decision("kept", f"{what}: {NO_ACTION}")
    status = changed.get("status")
    stage, step = opportunities.status_stage("deal", str(status)), f"status:{status}"
    if stage is None:  # not a mapped status: the caller saw the stage move
        stage, step = moved[1], str(work.payload.get("pipelineStageId"))
    data = {"ghl_opportunity_id": work.ghl_id, "stage": stage}
    if contact:
        data["ghl_contact_id"] = contact
        person = _person(conn, work.location_id, contact, customers)
        data.update({k: str(person[k]) for k in ("email", "phone") if person.get(k)})
    key = f"move_deal:{work.ghl_id}:{step}:{_digest(work.version)}"
    queued = enqueue(
        conn,
        location_id=work.location_id,
        action="move_deal",
        dedupe_key=key,
        ghl_entity="opportunity",
        ghl_id=work.ghl_id,
        data=data,
        url=settings.url("move_deal"),
        now=now,
        order=0,
    )
    decision = Decision("written_back", f"move_deal {queued.id} ({queued.status})")
    decision.queued.append(("move_deal", queued.id, queued.status))
    return decision


def _person(
    conn: sa.Connection, location_id: str, contact: str, customers: list[str]
) -> Mapping[str, Any]:
    """The card's contact as ghlsync knows it: what we wrote, then what GHL told us."""
    known = _ghlrecords.get(conn, location_id, "contact", contact).fields
    return {**written(conn, location_id, "contact", customers), **known}


def _leased(conn: sa.Connection, location_id: str, customers: list[str]) -> bool:
    """A DripJobs-side work row of the card's customer is running (its upsert may be on the
    wire, and its snapshot not recorded yet)."""
    if not customers:
        return False
    count = conn.execute(
        sa.select(sa.func.count())
        .select_from(work_items)
        .where(
            work_items.c.location_id == location_id,
            work_items.c.source_id.in_(customers),
            work_items.c.status == "leased",
        )
    ).scalar()
    return bool(count)


def _digest(version: float | None) -> str:
    return hashlib.sha256(repr(version).encode()).hexdigest()[:16]
