"""The preview engine: what one DripJobs event would do, nothing sent and nothing written.

Shared by `ghlsync preview`, `ghlsync recipes test` and the console's mapping tester, so the
three show the same thing: the GHL calls the worker's flows would plan for the mapped event
(`plan_event`) and the recipes its trigger would run now or on a timer, with their steps and
calls (`dry_run_recipes`). Both read a store (a throwaway one from `scratch_store`: what a
first delivery would do) and never send: the flows get a dry-run sender.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from ghlsync._clock import SYSTEM_CLOCK, Clock
from ghlsync.engine.flows.recipes._preview import EventPreview, preview_event
from ghlsync.engine.flows.to_ghl._dispatch import plan
from ghlsync.engine.flows.to_ghl._model import FlowContext
from ghlsync.engine.flows.to_ghl._plan import PlannedCall
from ghlsync.mapping import AppConfig, MappedEvent

__all__ = [
    "PREVIEW_CALENDAR",
    "PREVIEW_LOCATION",
    "dripjobs_trigger",
    "dry_run_recipes",
    "plan_event",
    "scratch_store",
]

PREVIEW_LOCATION = "<location id>"  # shown when no ghl.location_id is configured
PREVIEW_CALENDAR = "<calendar id>"


@contextlib.contextmanager
def scratch_store(prefix: str = "ghlsync-preview-") -> Iterator[sa.Engine]:
    """A migrated throwaway SQLite store, deleted on exit (nothing synced yet)."""
    from ghlsync.store import create_engine, migrate

    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        engine = create_engine(f"sqlite:///{Path(tmp) / 'preview.db'}")
        try:
            migrate(engine)
            yield engine
        finally:
            engine.dispose()


def dripjobs_trigger(event: str) -> str:
    """The recipe trigger a DripJobs event name fires (`lead.created` ->
    `dripjobs.lead.created`); a name that already says its side is kept."""
    return event if event.startswith(("dripjobs.", "ghl.")) else f"dripjobs.{event}"


def _context(engine: sa.Engine, config: AppConfig, clock: Clock) -> FlowContext:
    location = config.ghl.location_id or PREVIEW_LOCATION
    calendar = config.ghl.calendar_id or PREVIEW_CALENDAR
    return FlowContext(engine, None, location, calendar, config, clock)


async def plan_event(
    engine: sa.Engine, config: AppConfig, mapped: MappedEvent, *, clock: Clock = SYSTEM_CLOCK
) -> list[PlannedCall]:
    """The GHL calls the worker's flows would make for `mapped`, given the store.

    Raises what the flows raise when they refuse (GHLError, MappingError: e.g. a task whose
    contact was never synced)."""
    return await plan(_context(engine, config, clock), mapped)


async def dry_run_recipes(
    engine: sa.Engine,
    config: AppConfig,
    trigger: str,
    payload: Mapping[str, Any],
    *,
    clock: Clock = SYSTEM_CLOCK,
    only: str | None = None,
) -> EventPreview:
    """Every recipe `trigger` names (or only the recipe `only`): would it run, now or on a
    timer (and until which event cancels it), the condition that failed, its steps and calls.

    Raises MappingError when a step cannot be prepared (ConfigError for invalid recipes)."""
    ctx = _context(engine, config, clock)
    return await preview_event(
        engine,
        config,
        trigger,
        payload,
        location_id=ctx.location_id,
        calendar_id=ctx.calendar_id,
        clock=clock,
        only=only,
    )
