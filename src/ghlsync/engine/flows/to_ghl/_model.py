"""The flows' inputs and outputs: context, entity shape, outcome, and the run of one event."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from ghlsync._clock import Clock
from ghlsync.engine.flows.to_ghl._customfields import CustomFieldResolver
from ghlsync.engine.flows.to_ghl._plan import Requester, Sender
from ghlsync.engine.state._ledger import Ledger, SettleStates
from ghlsync.engine.state._syncstate import SyncState
from ghlsync.ghl._errors import RetriableError
from ghlsync.mapping import MappedEntity


@dataclass(slots=True)
class FlowContext:
    """Everything a flow needs for one location (the worker builds one per claimed item)."""

    engine: sa.Engine
    client: Requester | None  # a `GHLClient` (only `request()` is used); None for `plan` only
    location_id: str
    calendar_id: str | None
    config: Any  # `AppConfig`; flows read nothing from it today
    clock: Clock
    # The worker's: states recorded while the item runs, written when it is settled (None:
    # each `record` commits at once, as for callers that settle nothing).
    settle: SettleStates | None = None


@dataclass(frozen=True, slots=True)
class EntityOutcome:
    """What syncing one entity did: for the audit log and the demo summary.

    `action` is one of created, updated, completed, reopened, cancelled, deleted, skipped.
    `calls` counts every GHL request made for it (lookups included).
    """

    entity_type: str
    source_id: str
    action: str
    ghl_id: str | None
    calls: int
    detail: str = ""


class ParentNotSyncedError(RetriableError):
    """A task, note or appointment whose contact is not in GHL yet: retry after the contact.

    Its contact's own work item is usually still queued: while it is (`customer_id` names it),
    the worker waits for it without counting the attempt, however long the contact takes (a
    location out of budget, a dead worker's lease). When it is not, the retries run out and the
    message says which customer was never seen.
    """

    def __init__(self, message: str, *, customer_id: str | None = None) -> None:
        super().__init__(message)
        self.customer_id = customer_id


@dataclass(slots=True)
class Run:
    """One pass over an event: where calls go, what is recorded, and the location's ids."""

    ledger: Ledger
    sender: Sender
    fields: CustomFieldResolver
    location_id: str
    calendar_id: str | None
    # Two-way sync (writeback configured): field owner rules and GHL-side state on updates.
    twoway: Any = None

    @property
    def calls(self) -> int:
        """Calls sent so far in this run."""
        return int(getattr(self.sender, "calls", 0))


def parent_source_id(entity: MappedEntity) -> str | None:
    """The DripJobs customer id a child entity belongs to."""
    return entity.parent.source_id if entity.parent is not None else None


def updated_at(entity: MappedEntity) -> float | None:
    """The entity's source timestamp as epoch seconds (what sync_state stores)."""
    return entity.source_updated_at.timestamp() if entity.source_updated_at else None


def is_stale(entity: MappedEntity, state: SyncState | None) -> bool:
    """True when GHL already holds a newer version of this entity than the one mapped."""
    ours = updated_at(entity)
    if state is None or state.source_updated_at is None or ours is None:
        return False
    return ours < state.source_updated_at


STALE = "older than the version already synced"
UNCHANGED = "unchanged since the last sync"
UNKNOWN = "never synced, nothing to do"


def outcome(
    run: Run,
    entity: MappedEntity,
    action: str,
    ghl_id: str | None,
    start: int,
    detail: str = "",
) -> EntityOutcome:
    """An outcome with the calls made since `start`."""
    calls = run.calls - start
    return EntityOutcome(entity.type, entity.source_id, action, ghl_id, calls, detail)
