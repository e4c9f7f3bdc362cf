"""Field owner rules: a DripJobs change meets a GHL-side change of the same field.

A GHL-side change DripJobs could not receive stays `pending` in `ghl_records` (with its GHL
time). When a DripJobs event later changes the same field (it differs from the last-synced
snapshot, so DripJobs really changed it), both sides changed it since the last sync: a true
conflict. The field's owner decides (`writeback.fields.contact[].owner`, else
`writeback.default_owner`):

- `dripjobs`: DripJobs' value is written to GHL;
- `ghl`: GHL keeps its value (the field is left out of the update);
- `newest`: the later change by source time wins (DripJobs' `updated_at` against the GHL
  event time); without a DripJobs time, or on a tie, GHL keeps its value.

Each conflict becomes a line for the audit log naming both values, the winner and the rule.
A field DripJobs did not change is never in the update (the contact flow diffs against the
snapshot), so a GHL-only change is never overwritten. After the write, `note_written`
records what GHL now holds and clears the pending changes the write settled.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from ghlsync.engine.flows.to_dripjobs._compare import same
from ghlsync.engine.flows.to_dripjobs._events import parse_time
from ghlsync.engine.state import _ghlrecords
from ghlsync.mapping._writeback import WritebackSettings
from ghlsync.store._engine import begin_immediate
from ghlsync.store._tables_twoway import writeback_outbox

__all__ = ["Resolution", "not_held", "note_written", "resolve"]


@dataclass(slots=True)
class Resolution:
    """The update to send after the rules, and the audit lines of the conflicts."""

    body: dict[str, Any]
    conflicts: list[str] = field(default_factory=list)
    settled: list[str] = field(default_factory=list)  # pending GHL changes now resolved
    known_tags: list[str] | None = None  # the tags GHL is known to have (None: unknown)


def resolve(
    engine: sa.Engine,
    settings: WritebackSettings,
    location_id: str,
    ghl_id: str,
    body: Mapping[str, Any],
    dj_time: float | None,
    *,
    live: Mapping[str, Any] | None = None,
    last_body: Mapping[str, Any] | None = None,
) -> Resolution:
    """Apply the owner rules to a DripJobs update of one GHL contact.

    `live` is GHL's contact as read just now (its webhooks may lag); `last_body` what we
    last wrote there.
    """
    with engine.connect() as conn:
        record = _ghlrecords.get(conn, location_id, "contact", ghl_id)
    pending = {**_unseen(body, live or {}, last_body or {}), **record.pending}
    tags = live.get("tags") if live and "tags" in live else record.fields.get("tags")
    known = [str(t).lower() for t in tags] if isinstance(tags, list) else None
    result = Resolution(dict(body), known_tags=known)
    for name, value in body.items():
        if live and name in live and same(name, value, live[name]):
            result.body.pop(name, None)  # GHL holds it already: writing it would be an echo
            result.settled.append(name)
            continue
        change = pending.get(name)
        if change is None:
            continue
        result.settled.append(name)
        theirs = change.get("value")
        if same(name, value, theirs):
            del result.body[name]  # both sides agree already: nothing to write
            continue
        rule = settings.owner(name)
        winner = _winner(rule, dj_time, change.get("at"))
        if winner == "ghl":
            del result.body[name]
        result.conflicts.append(
            f"conflict {name}: dripjobs {value!r} vs ghl {theirs!r} → {winner} (owner {rule})"
        )
    return result


def _winner(rule: str, dj_time: float | None, ghl_time: object) -> str:
    if rule in ("dripjobs", "ghl"):
        return rule
    if dj_time is not None and isinstance(ghl_time, int | float) and dj_time > ghl_time:
        return "dripjobs"
    return "ghl"


def note_written(
    engine: sa.Engine,
    location_id: str,
    ghl_id: str,
    written: Mapping[str, Any],
    settled: list[str],
    *,
    version: float | None,
    now: float,
) -> None:
    """GHL now holds `written`: remember it (echo checks) and clear the settled conflicts.

    `version` is GHL's own `dateUpdated` after the write (GHL's clock, like its webhook
    times): the GHL-side version moves to it, so a GHL event from before this write (its
    webhook still queued) cannot record a change this write already overwrote.
    """
    with begin_immediate(engine) as conn:
        record = _ghlrecords.get(conn, location_id, "contact", ghl_id)
        record.fields.update(written)
        for name in [*settled, *written]:
            record.pending.pop(name, None)
        if version is not None:
            record.version = max(record.version or version, version)
        _ghlrecords.put(conn, location_id, "contact", ghl_id, record, now=now)


def not_held(
    engine: sa.Engine,
    location_id: str,
    entity_type: str,
    ghl_id: str,
    changed: Mapping[str, Any],
    settings: WritebackSettings | None = None,
) -> dict[str, Any]:
    """The fields of an update that are neither held by GHL already nor an echo of our own
    write-backs to this record.

    After a write-back, DripJobs fires its event for the change GHL made (an appointment
    rescheduled in GHL → Update Appointment → `appointment.updated`). GHL holds those values,
    or, when it was rescheduled again meanwhile, newer ones: either way, writing the values
    we wrote back would be an echo write (and could undo the newer GHL change).
    """
    with engine.connect() as conn:
        known = _ghlrecords.get(conn, location_id, entity_type, ghl_id).fields
        ours = _written_back(conn, settings, location_id, entity_type, ghl_id)
    return {
        k: v
        for k, v in changed.items()
        if not (k in known and same(k, v, known[k]))
        and not any(same(k, v, sent) for sent in ours.get(k, ()))
    }


def _written_back(
    conn: sa.Connection,
    settings: WritebackSettings | None,
    location_id: str,
    entity_type: str,
    ghl_id: str,
) -> dict[str, list[Any]]:
    """GHL field → the values our write-backs for this record carried (appointments)."""
    if settings is None or entity_type != "appointment":
        return {}
    back = {rule.target: rule.source for rule in settings.fields.appointment}
    o = writeback_outbox.c
    rows = conn.execute(
        sa.select(o.body).where(
            o.location_id == location_id, o.ghl_entity == entity_type, o.ghl_id == ghl_id
        )
    )
    values: dict[str, list[Any]] = {}
    for row in rows:
        for flat, value in json.loads(row.body).get("data", {}).items():
            if flat in back:
                values.setdefault(back[flat], []).append(value)
    return values


def _unseen(
    body: Mapping[str, Any], live: Mapping[str, Any], last_body: Mapping[str, Any]
) -> dict[str, dict[str, Any]]:
    """GHL-side changes whose webhook has not been processed yet: a field GHL holds with a
    value that is neither what we last wrote nor DripJobs' new value, at GHL's dateUpdated."""
    at = parse_time(live.get("dateUpdated"))
    found = {}
    for name, value in body.items():
        if name not in live or name not in last_body:
            continue
        held = live[name]
        if not same(name, held, last_body[name]) and not same(name, held, value):
            found[name] = {"value": held, "at": at}
    return found
