"""Sync flows: one mapped DripJobs event → the fewest correct GHL calls, exactly once.

`sync_event` walks the event's entities in order (the contact first, then its task, note or
appointment) and returns one `EntityOutcome` each. It is safe to call again after a crash or
an error at any point: creates are announced by a committed `pending` ID-map row, and a retry
resolves such a row by lookup before it would create anything. `plan` runs the same decisions
against the same store without sending or recording anything (for `ghlsync preview`).

Errors: the GHL client's (`FatalError`, `RetriableError` incl. `OutcomeUnknownError`,
`SkippableError`), `MappingError` (incl. `UnknownCustomFieldError`), and
`ParentNotSyncedError` (a `RetriableError`) when a child's contact is not in GHL yet.
"""

from __future__ import annotations

from ghlsync.engine.flows.to_ghl._children import sync_child
from ghlsync.engine.flows.to_ghl._contact import sync_contact
from ghlsync.engine.flows.to_ghl._customfields import CustomFieldResolver
from ghlsync.engine.flows.to_ghl._kinds import KINDS
from ghlsync.engine.flows.to_ghl._model import EntityOutcome, FlowContext, Run
from ghlsync.engine.flows.to_ghl._opportunity import sync_opportunity
from ghlsync.engine.flows.to_ghl._plan import DrySender, LiveSender, PlannedCall, Sender
from ghlsync.engine.state._ledger import DryLedger, Ledger, SqlLedger
from ghlsync.mapping import MappedEntity, MappedEvent, MappingError


async def sync_event(ctx: FlowContext, mapped: MappedEvent) -> list[EntityOutcome]:
    """Sync every entity of one mapped event to GHL, in order."""
    if ctx.client is None:
        raise ValueError("sync_event needs a GHL client in FlowContext.client")
    ledger = SqlLedger(ctx.engine, ctx.location_id, ctx.clock, ctx.settle)
    run = _run(ctx, ledger, LiveSender(ctx.client, ctx.location_id))
    outcomes = [await sync_entity(run, mapped, entity) for entity in mapped.entities]
    return outcomes + await _card(ctx, run, mapped)


async def plan(ctx: FlowContext, mapped: MappedEvent) -> list[PlannedCall]:
    """The calls `sync_event` would make now, given the store; nothing is sent or written.

    `ctx.client` is not used (it may be None): previews need no credentials.
    """
    sender = DrySender()
    run = _run(ctx, DryLedger(SqlLedger(ctx.engine, ctx.location_id, ctx.clock)), sender)
    for entity in mapped.entities:
        await sync_entity(run, mapped, entity)
    await _card(ctx, run, mapped)
    return sender.planned


async def sync_entity(run: Run, mapped: MappedEvent, entity: MappedEntity) -> EntityOutcome:
    """Dispatch one entity to its flow."""
    if entity.type == "contact":
        return await sync_contact(run, entity, primary=entity is mapped.primary)
    kind = KINDS.get(entity.type)
    if kind is None:
        raise MappingError("entity type", entity.type, "has no sync flow")
    return await sync_child(run, kind, entity)


async def _card(ctx: FlowContext, run: Run, mapped: MappedEvent) -> list[EntityOutcome]:
    """The customer's opportunity, after the contact (`opportunities:` in the config)."""
    settings = getattr(ctx.config, "opportunities", None)
    if mapped.opportunity is None or settings is None:
        return []
    return [await sync_opportunity(run, mapped.opportunity, settings, ctx.clock)]


def _run(ctx: FlowContext, ledger: Ledger, sender: Sender) -> Run:
    fields = CustomFieldResolver(ctx.engine, ctx.location_id, ctx.clock)
    settings = getattr(ctx.config, "writeback", None)
    twoway = settings if settings is not None and settings.enabled else None
    return Run(ledger, sender, fields, ctx.location_id, ctx.calendar_id, twoway)
