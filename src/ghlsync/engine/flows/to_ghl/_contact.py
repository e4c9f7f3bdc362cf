"""Contact flow: upsert once, then only deltas (a changed field → one PUT; tags → tag calls).

Calls, by what the store knows:
- confirmed, same content hash         → none
- confirmed, changed                   → `PUT /contacts/{id}` with the changed fields only
                                         (never `tags`: a PUT's tags replace all of them),
                                         then `POST`/`DELETE /contacts/{id}/tags` for the
                                         tag delta against the last-synced tag snapshot
- unknown, location refuses duplicates → pending row (committed) → `POST /contacts/` with
                                         the tags (it never merges, so it wipes no one's
                                         tags); refused (400: the person exists) → the
                                         update path on that person, tags learnt from the
                                         PUT answer; when the customer's other field
                                         (email/phone) is someone else's, parked
                                         (`_contact_match`: one duplicate search)
- unknown, duplicates allowed         → `POST /contacts/search` (email OR phone): one found
                                         → the update path on it; several → parked; none →
                                         the upsert below
- unknown, rule unreadable             → pending row (committed) → `POST /contacts/upsert`
  (`_duplicate_rule`)                    (no tags: on a merge they would wipe the person's
                                         existing tags) → tag calls against the tags the
                                         upsert answer shows
- pending (an earlier try may have created it) → `GET /contacts/search/duplicate` by email,
                                         then phone → found: only what the record lacks;
                                         not found: the upsert above
- delete                               → `DELETE /contacts/{id}` (404 = already gone)
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Mapping
from typing import Any

from ghlsync.engine.flows._inflight import entity_lock
from ghlsync.engine.flows.to_dripjobs._events import parse_time
from ghlsync.engine.flows.to_dripjobs._owners import Resolution, note_written, resolve
from ghlsync.engine.flows.to_ghl._contact_match import (
    AmbiguousContactError,
    other_person,
    search_first,
)
from ghlsync.engine.flows.to_ghl._contact_stamps import Stamps, advanced, fresh, latest, stored
from ghlsync.engine.flows.to_ghl._duplicate_rule import duplicates_allowed
from ghlsync.engine.flows.to_ghl._model import (
    STALE,
    UNCHANGED,
    UNKNOWN,
    EntityOutcome,
    ParentNotSyncedError,
    Run,
    outcome,
    updated_at,
)
from ghlsync.engine.flows.to_ghl._plan import PlannedCall, TagDelta, tag_delta
from ghlsync.engine.flows.to_ghl._records import answer_id, records, same
from ghlsync.engine.state._ledger import DryLedger
from ghlsync.engine.state._syncstate import DELETED, SyncState
from ghlsync.ghl._errors import BadRequestError, NotFoundError, ServerError
from ghlsync.mapping import MappedEntity, MappingError, content_hash

CONTACT = "contact"


async def sync_contact(run: Run, entity: MappedEntity, *, primary: bool = True) -> EntityOutcome:
    """Bring one contact in GHL to the mapped content with the fewest calls.

    `primary` is False for the contact part of a task, note or appointment event: when such a
    partial contact cannot be created (no email or phone), the child must wait for the
    customer's own event (`ParentNotSyncedError`, retriable) instead of failing for good.

    Fields are ordered one by one (`_contact_stamps`): only what GHL holds no newer value of
    is applied. One sync per contact runs at a time in this process, so the children of one
    new customer in one batch create it once and the later ones see it confirmed.
    """
    async with entity_lock(run.location_id, CONTACT, entity.source_id):
        return await _sync(run, entity, primary)


async def _sync(run: Run, mapped: MappedEntity, primary: bool) -> EntityOutcome:
    start = run.calls
    row, state = await run.ledger.load(CONTACT, mapped.source_id)
    ghl_id = row.ghl_id if row else None
    if mapped.action == "delete":
        if _delete_is_stale(mapped, state):
            return outcome(run, mapped, "skipped", ghl_id, start, STALE)
        return await _delete(run, mapped, start)
    entity = fresh(mapped, state)
    if entity is None:
        return outcome(run, mapped, "skipped", ghl_id, start, STALE)
    stamps = advanced(entity, state)
    if row is not None and row.state == "confirmed" and ghl_id:
        if state is not None and state.content_hash == content_hash(entity):
            if stamps != stored(state):  # same content, newer version: remember the version
                await run.ledger.record(CONTACT, entity.source_id, _restamped(state, stamps))
            return outcome(run, entity, "skipped", ghl_id, start, UNCHANGED)
        try:
            snapshot = state.snapshot if state else {}
            detail = await _update(run, entity, ghl_id, snapshot, stamps, mapped=True)
            return outcome(run, entity, "updated", ghl_id, start, detail)
        except NotFoundError:  # deleted in GHL meanwhile: create it again
            await run.ledger.forget(CONTACT, entity.source_id)
            entity, stamps = mapped, advanced(mapped, None)
    elif row is not None and row.state == "pending":
        found = await find_contact(run, row.pending_body or {})
        if found is not None:
            ghl_id = str(found["id"])
            await _update(run, entity, ghl_id, await _known(run, entity, found), stamps)
            return outcome(run, entity, "created", ghl_id, start)
    ghl_id = await _create(run, entity, primary, stamps)
    return outcome(run, entity, "created", ghl_id, start)


def _delete_is_stale(entity: MappedEntity, state: SyncState | None) -> bool:
    """A delete older than the newest write the contact has seen is ignored (the queue's
    rule for a late delete), so a late retry cannot remove a customer that changed since."""
    ours, newest = updated_at(entity), latest(stored(state))
    return ours is not None and newest is not None and ours < newest


def _restamped(state: SyncState, stamps: Stamps) -> SyncState:
    snapshot = {**state.snapshot, "stamps": stamps}
    return SyncState(state.content_hash, latest(stamps), snapshot)


async def find_contact(run: Run, pending: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The GHL contact a pending create may have made: duplicate search by email, then phone."""
    for param, field in (("email", "email"), ("number", "phone")):
        value = pending.get(field)
        if not value:
            continue
        answer = await run.sender.send(
            PlannedCall(
                "GET",
                "/contacts/search/duplicate",
                params={"locationId": run.location_id, param: str(value)},
                purpose="lookup",
            )
        )
        found = [r for r in records(answer, "contact", "contacts") if r.get("id")]
        if found:
            return found[0]
    return None


async def _update(
    run: Run,
    entity: MappedEntity,
    ghl_id: str,
    snapshot: Mapping[str, Any],
    stamps: Stamps,
    *,
    learn: bool = False,
    mapped: bool = False,
) -> str:
    """PUT the changed fields (if any), send the tag delta, record the new state.

    `learn`: the snapshot is empty because we never wrote this person (a create GHL refused
    as a duplicate), so the tag delta also works on the tags the PUT answer shows.
    `mapped`: the ID map already holds `ghl_id`, confirmed: only the state is recorded (with
    the worker, written when the item is settled); else the mapping is confirmed with it.
    With two-way sync on, a field GHL also changed since the last sync follows its owner
    rule (`flows.to_dripjobs._owners`); the conflicts are returned for the audit log.
    """
    last_body: Mapping[str, Any] = snapshot.get("body", {})
    last_fields: Mapping[str, Any] = snapshot.get("custom_fields", {})
    update = entity.request_body("update")
    body = {k: v for k, v in update.items() if last_body.get(k) != v}
    resolution = await _owner_rules(run, entity, ghl_id, body, snapshot)
    body = dict(resolution.body) if resolution is not None else body
    written = dict(body)
    changed = {k: v for k, v in entity.custom_fields.items() if last_fields.get(k) != v}
    if changed:
        body["customFields"] = await run.fields.resolve(changed, run.sender)
    seen: list[str] = []
    ghl_time: float | None = None
    if body:
        answer = await run.sender.send(
            PlannedCall("PUT", f"/contacts/{ghl_id}", body=body, purpose="update")
        )
        seen = _tags_of(answer) if learn else []
        ghl_time = _date_updated(answer)
    current = [*snapshot.get("tags", ()), *seen]
    delta = tag_delta(current, entity.tags_add, entity.tags_remove_prefixes)
    if resolution is not None and resolution.known_tags is not None:
        delta = _against_ghl(delta, resolution.known_tags, entity)
    tags = await send_tags(run, ghl_id, delta)
    state = _state(entity, tags, stamps, base=snapshot)
    if mapped:
        await run.ledger.record(CONTACT, entity.source_id, state)
    else:
        await run.ledger.confirm(CONTACT, entity.source_id, ghl_id, state)
    if resolution is None:
        return ""
    written["tags"] = sorted(tags)
    engine, now = run.fields.engine, run.fields.clock.now()
    await asyncio.to_thread(
        note_written,
        engine,
        run.location_id,
        ghl_id,
        written,
        resolution.settled,
        version=ghl_time,
        now=now,
    )
    return "; ".join(resolution.conflicts)


async def _owner_rules(
    run: Run,
    entity: MappedEntity,
    ghl_id: str,
    body: Mapping[str, Any],
    snapshot: Mapping[str, Any],
) -> Resolution | None:
    """Two-way only: the update after the field owner rules (None when two-way is off).

    GHL's webhook for a change made there may not have arrived yet, so before overwriting
    fields or tags GHL's current contact is read (one GET, only when DripJobs changed a field
    or a tag): a field GHL holds with a value that is neither our last write nor DripJobs'
    new one was changed in GHL meanwhile, at GHL's `dateUpdated`; the owner rule decides it
    too. The tag delta then works on the tags GHL has (a tag removed in GHL is not removed
    again).
    """
    if run.twoway is None or isinstance(run.ledger, DryLedger):
        return None
    last_body: Mapping[str, Any] = snapshot.get("body", {})
    tags = tag_delta(snapshot.get("tags", ()), entity.tags_add, entity.tags_remove_prefixes)
    live: Mapping[str, Any] = {}
    if body or tags.add or tags.remove:
        answer = await run.sender.send(PlannedCall("GET", f"/contacts/{ghl_id}", purpose="lookup"))
        record = answer.get("contact") if isinstance(answer, Mapping) else None
        live = record if isinstance(record, Mapping) else {}
    return await asyncio.to_thread(
        resolve,
        run.fields.engine,
        run.twoway,
        run.location_id,
        ghl_id,
        body,
        updated_at(entity),
        live=live,
        last_body=last_body,
    )


async def _create(run: Run, entity: MappedEntity, primary: bool, stamps: Stamps) -> str:
    """Write-ahead pending row, upsert, confirm, then the tags."""
    body = entity.request_body("create")
    if not body.get("email") and not body.get("phone"):
        if not primary:
            raise ParentNotSyncedError(
                f"customer {entity.source_id!r} is not in GHL yet and this event carries "
                "no email or phone to create it with",
                customer_id=entity.source_id,
            )
        raise MappingError(
            "email/phone", None, "is missing: a contact needs one to be found again in GHL"
        )
    if entity.custom_fields:  # resolved first: an unknown key must not leave a pending row
        body["customFields"] = await run.fields.resolve(entity.custom_fields, run.sender)
    body["locationId"] = run.location_id
    rule = await duplicates_allowed(
        run.fields.engine, run.location_id, run.fields.clock, run.sender
    )
    if rule is True:  # an upsert would merge into whichever duplicate GHL picks
        found = await search_first(run, entity.source_id, body)
        if found is not None:
            ghl_id = str(found["id"])
            await _update(run, entity, ghl_id, await _known(run, entity, found), stamps)
            return ghl_id
    await run.ledger.mark_pending(
        CONTACT, entity.source_id, {"email": body.get("email"), "phone": body.get("phone")}
    )
    if rule is False:
        return await _create_new(run, entity, body, stamps)
    answer = await run.sender.send(
        PlannedCall("POST", "/contacts/upsert", body=body, purpose="create", idempotent=False)
    )
    ghl_id = _created_id(run, entity, answer)
    # The upsert answer shows the person's tags (a merge keeps them): the delta works on those.
    delta = tag_delta(_tags_of(answer), entity.tags_add, entity.tags_remove_prefixes)
    if not delta.add and not delta.remove:
        state = _state(entity, delta.after, stamps)
        await run.ledger.confirm(CONTACT, entity.source_id, ghl_id, state)
        return ghl_id
    # Confirm at once; an empty hash marks the state unfinished, so a crash before the tag
    # calls below makes the next run send them (the snapshot says: no tags known yet).
    unfinished = _state(entity, (), stamps, digest="")
    await run.ledger.confirm(CONTACT, entity.source_id, ghl_id, unfinished)
    tags = await send_tags(run, ghl_id, delta)
    await run.ledger.record(CONTACT, entity.source_id, _state(entity, tags, stamps))
    return ghl_id


async def _create_new(run: Run, entity: MappedEntity, body: dict[str, Any], stamps: Stamps) -> str:
    """`POST /contacts/` with the tags: one call, where the location refuses duplicates.

    That create never merges, so its tags overwrite no one's: a person who already exists is
    refused (400; GHL names them in `meta.contactId`) and then updated like a known contact.
    The pending row is already committed, so a lost answer is found by lookup on retry.
    """
    delta = tag_delta((), entity.tags_add, entity.tags_remove_prefixes)
    create = {**body, "tags": list(delta.add)} if delta.add else body
    call = PlannedCall("POST", "/contacts/", body=create, purpose="create", idempotent=False)
    try:
        answer = await run.sender.send(call)
    except BadRequestError as exc:
        person, matched = _duplicate_of(exc)
        if person is not None:
            try:
                await other_person(run, entity.source_id, body, person, matched)
            except AmbiguousContactError:
                await run.ledger.forget(CONTACT, entity.source_id)  # nothing was created
                raise
            await _update(run, entity, person, {}, stamps, learn=True)
            return person
        found = await find_contact(run, body) if "duplicate" in exc.message.lower() else None
        if found is None:
            raise
        person = str(found["id"])
        await _update(run, entity, person, await _known(run, entity, found), stamps)
        return person
    ghl_id = _created_id(run, entity, answer)
    tags = delta.after | {t.lower() for t in _tags_of(answer)}
    await run.ledger.confirm(CONTACT, entity.source_id, ghl_id, _state(entity, tags, stamps))
    return ghl_id


def _duplicate_of(exc: BadRequestError) -> tuple[str | None, str | None]:
    """The existing person's id in a create refused as a duplicate (`meta.contactId`), and
    the field GHL matched them by (`meta.matchingField`), when GHL says."""
    meta = exc.body.get("meta") if isinstance(exc.body, Mapping) else None
    meta = meta if isinstance(meta, Mapping) else {}
    person, field = meta.get("contactId"), meta.get("matchingField")
    return (
        str(person) if isinstance(person, str) and person else None,
        str(field) if isinstance(field, str) and field else None,
    )


async def _delete(run: Run, entity: MappedEntity, start: int) -> EntityOutcome:
    """Delete the GHL contact (unless another DripJobs customer shares it), forget the row."""
    row = await run.ledger.lookup(CONTACT, entity.source_id)
    if row is None:
        return outcome(run, entity, "skipped", None, start, UNKNOWN)
    ghl_id = row.ghl_id
    if row.state == "pending":
        found = await find_contact(run, row.pending_body or {})
        ghl_id = str(found["id"]) if found else None
    shared = (
        [s for s in await run.ledger.owners(CONTACT, ghl_id) if s != entity.source_id]
        if ghl_id
        else []
    )
    detail = f"GHL contact kept: shared with customer {', '.join(shared)}" if shared else ""
    if ghl_id and not shared:
        with contextlib.suppress(NotFoundError):  # already gone: the goal is reached
            await run.sender.send(PlannedCall("DELETE", f"/contacts/{ghl_id}", purpose="delete"))
    await run.ledger.forget(CONTACT, entity.source_id)
    # A tombstone keeps the delete's timestamp, so an older update arriving late is skipped.
    await run.ledger.record(CONTACT, entity.source_id, SyncState(DELETED, updated_at(entity)))
    return outcome(run, entity, "deleted", ghl_id, start, detail)


async def send_tags(run: Run, ghl_id: str, delta: TagDelta) -> frozenset[str]:
    """At most one add call and one remove call, only for tags that changed.

    Returns the tags the contact is now known to have: the delta's result plus whatever the
    tag endpoints' answers (the contact's tag list) showed, e.g. tags added by hand in GHL.
    """
    known = set(delta.after)
    if delta.add:
        answer = await run.sender.send(
            PlannedCall(
                "POST",
                f"/contacts/{ghl_id}/tags",
                body={"tags": list(delta.add)},
                purpose="tags+",
                idempotent=True,  # adding a tag twice is harmless
            )
        )
        known.update(t.lower() for t in _tags_of(answer))
    if delta.remove:
        answer = await run.sender.send(
            PlannedCall(
                "DELETE",
                f"/contacts/{ghl_id}/tags",
                body={"tags": list(delta.remove)},
                purpose="tags-",
            )
        )
        known.update(t.lower() for t in _tags_of(answer))
    return frozenset(known - set(delta.remove))


async def _known(run: Run, entity: MappedEntity, record: Mapping[str, Any]) -> dict[str, Any]:
    """A snapshot of what a found GHL record already holds, so only the rest is sent."""
    body = {k: v for k, v in entity.body.items() if same(v, record.get(k))}
    theirs = {c.get("id"): c.get("value") for c in record.get("customFields") or []}
    fields: dict[str, Any] = {}
    if entity.custom_fields:
        resolved = await run.fields.resolve(entity.custom_fields, run.sender)
        for key, item in zip(sorted(entity.custom_fields), resolved, strict=True):
            if same(item["field_value"], theirs.get(item.get("id"))):
                fields[key] = entity.custom_fields[key]
    return {"body": body, "custom_fields": fields, "tags": sorted(_tags_of(record))}


def _against_ghl(delta: TagDelta, ghl_tags: Iterable[str], entity: MappedEntity) -> TagDelta:
    """Two-way: the tag delta checked against the tags GHL has now. Only tags DripJobs newly
    wants (not in the snapshot) that GHL lacks are added, so a tag removed in GHL is not put
    back by an event that did not change it; replaced prefixes remove what GHL has (a deal
    tag swapped in GHL is not removed twice, one added there is replaced)."""
    have = {t.lower() for t in ghl_tags}
    add = tuple(t for t in delta.add if t not in have)
    remove = tag_delta(have, entity.tags_add, entity.tags_remove_prefixes).remove
    return TagDelta(add, remove, frozenset((have | set(add)) - set(remove)))


def _date_updated(answer: Any) -> float | None:
    """GHL's `dateUpdated` of the contact in a PUT answer (GHL's clock), if shown."""
    if not isinstance(answer, Mapping):
        return None
    record = answer.get("contact") if isinstance(answer.get("contact"), Mapping) else answer
    return parse_time(record.get("dateUpdated")) if isinstance(record, Mapping) else None


def _tags_of(answer: Any) -> list[str]:
    """The tags of a contact record, or of the contact in an upsert answer."""
    if not isinstance(answer, Mapping):
        return []
    record = answer.get("contact") if isinstance(answer.get("contact"), Mapping) else answer
    tags = record.get("tags") if isinstance(record, Mapping) else None
    return [str(t) for t in tags] if isinstance(tags, list) else []


def _state(
    entity: MappedEntity,
    tags: Iterable[str],
    stamps: Stamps,
    *,
    base: Mapping[str, Any] | None = None,
    digest: str | None = None,
) -> SyncState:
    """The state after a sync; the body and custom fields merge over the `base` snapshot.

    Merging matters because a task's event carries a partial contact (say, only the email):
    it must not make the snapshot forget the fields a full customer event wrote. `stamps` are
    the per-part versions after this write; the newest is the contact's overall version.
    """
    base = base or {}
    snapshot = {
        "body": {**base.get("body", {}), **entity.request_body("update")},
        "custom_fields": {**base.get("custom_fields", {}), **entity.custom_fields},
        "tags": sorted(tags),
        "stamps": stamps,
    }
    chosen = content_hash(entity) if digest is None else digest
    return SyncState(chosen, latest(stamps), snapshot)


def _created_id(run: Run, entity: MappedEntity, answer: Any) -> str:
    ghl_id = answer_id(answer, "contact")
    if ghl_id:
        return ghl_id
    if not run.sender.live:
        return f"<new contact {entity.source_id}>"
    # The pending row stays; the retry finds the contact by lookup.
    raise ServerError("the contact create answered without a contact id", body=answer)
