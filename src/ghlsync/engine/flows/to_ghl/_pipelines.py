"""Pipelines by name: `Sales pipeline` / `Estimate booked` → GHL's pipeline and stage ids.

The mapping names pipelines and stages as people see them in GHL; an upsert wants ids. The
location's pipelines (`GET /opportunities/pipelines`) are kept in the store (`ghl_pipelines`,
one row per location), so every worker and every restart shares one read. A list younger than
`REFRESH_AFTER` seconds is used as it is; a name it lacks (a stage added in GHL, a typo) fetches
it again at most once per that window, so a typo costs one call per window, not one per event.
A dry run (`preview`) never fetches. Without a store (`engine=None`) the list is kept in this
process only.

The way back (a card moved in GHL → `move_deal` with the stage *name*) reads the same row
(`cached_stage`); `ensure_stage` fetches the list first when the moved-to stage is not in it
(nothing read yet, e.g. right after a restart on a fresh store, or a stage added since).
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from ghlsync._clock import Clock
from ghlsync.engine.flows.to_ghl._plan import PlannedCall, Sender
from ghlsync.mapping import MappingError
from ghlsync.store._tables_sync import ghl_pipelines

REFRESH_AFTER = 300.0
MOVE_REFRESH_AFTER = 30.0


@dataclass(frozen=True, slots=True)
class Pipeline:
    """One pipeline: its id, name and stages (name → id, in order)."""

    id: str
    name: str
    stages: tuple[tuple[str, str], ...]

    def stage_id(self, name: str) -> str | None:
        """The id of the stage called `name` (case-insensitive), if any."""
        folded = name.strip().casefold()
        return next((sid for sname, sid in self.stages if sname.casefold() == folded), None)


class UnknownPipelineError(MappingError):
    """The mapping names a pipeline or a stage the GHL location does not have."""


_memory: dict[str, tuple[float, list[Pipeline]]] = {}
_lock = threading.Lock()


def forget_pipelines() -> None:
    """Drop the in-process lists (those of runs without a store; tests)."""
    with _lock:
        _memory.clear()


async def resolve(
    sender: Sender,
    location_id: str,
    clock: Clock,
    pipeline: str,
    stage: str | None,
    setting: str,
    *,
    engine: sa.Engine | None = None,
) -> tuple[str, str | None]:
    """(pipeline id, stage id or None) for names from the mapping.

    Raises `UnknownPipelineError` naming `setting` and listing what the location has. A dry
    run without a kept list answers with the names in angle brackets instead.
    """
    entry = await _read(engine, location_id)
    known = entry[1] if entry is not None else None
    found = _match(known or [], pipeline, stage)
    if found is None and sender.live and _may_refresh(entry, clock):
        known = await refresh(sender, location_id, clock, engine=engine)
        found = _match(known, pipeline, stage)
    if found is not None:
        return found
    if not sender.live and known is None:
        return f"<pipeline {pipeline}>", (f"<stage {stage}>" if stage else None)
    raise _unknown(known or [], pipeline, stage, setting)


def cached_stage(
    location_id: str,
    pipeline_id: str,
    stage_id: str,
    *,
    engine: sa.Engine | None = None,
    conn: sa.Connection | None = None,
) -> tuple[str, str] | None:
    """(pipeline name, stage name) of a stage id from the kept list, if known; no GHL call.

    Reads the store through `conn` (the caller's transaction) or `engine`; else this process's
    list.
    """
    entry = _load(conn, location_id) if conn is not None else _read_sync(engine, location_id)
    for item in entry[1] if entry is not None else []:
        if item.id == pipeline_id:
            name = next((n for n, sid in item.stages if sid == stage_id), None)
            return (item.name, name) if name is not None else None
    return None


async def ensure_stage(
    sender: Sender,
    engine: sa.Engine,
    location_id: str,
    clock: Clock,
    pipeline_id: str,
    stage_id: str,
) -> bool:
    """Make the kept list name `stage_id` when GHL has it: fetch the pipelines when nothing is
    kept yet, or when the kept list lacks the stage and is older than `MOVE_REFRESH_AFTER` (a
    card moved to a stage added since; cards of other pipelines cost at most one read per that
    window). True when the stage is known afterwards."""
    entry = await _read(engine, location_id)
    if _stage_in(entry, pipeline_id, stage_id):
        return True
    stale = entry is None or clock.now() - entry[0] >= MOVE_REFRESH_AFTER
    if not sender.live or not stale:
        return False
    await refresh(sender, location_id, clock, engine=engine)
    return cached_stage(location_id, pipeline_id, stage_id, engine=engine) is not None


def _stage_in(entry: tuple[float, list[Pipeline]] | None, pipeline_id: str, stage_id: str) -> bool:
    items = entry[1] if entry is not None else []
    return any(p.id == pipeline_id and any(s == stage_id for _, s in p.stages) for p in items)


async def refresh(
    sender: Sender, location_id: str, clock: Clock, *, engine: sa.Engine | None = None
) -> list[Pipeline]:
    """Read the location's pipelines from GHL and keep them (store, else this process)."""
    answer = await sender.send(
        PlannedCall(
            "GET",
            "/opportunities/pipelines",
            params={"locationId": location_id},
            purpose="pipelines",
        )
    )
    pipelines = _parse(answer)
    now = clock.now()
    if engine is None:
        with _lock:
            _memory[location_id] = (now, pipelines)
    else:
        await asyncio.to_thread(_save, engine, location_id, pipelines, now)
    return pipelines


def _match(
    known: list[Pipeline], pipeline: str, stage: str | None
) -> tuple[str, str | None] | None:
    wanted = pipeline.strip().casefold()
    for item in known:
        if wanted in (item.id.casefold(), item.name.casefold()):
            if stage is None:
                return item.id, None
            stage_id = item.stage_id(stage)
            return (item.id, stage_id) if stage_id else None
    return None


def _unknown(
    known: list[Pipeline], pipeline: str, stage: str | None, setting: str
) -> UnknownPipelineError:
    item = next(
        (p for p in known if pipeline.casefold() in (p.id.casefold(), p.name.casefold())), None
    )
    if item is None:
        names = ", ".join(repr(p.name) for p in known) or "none"
        return UnknownPipelineError(
            f"opportunities.{setting}_pipeline",
            pipeline,
            f"is not a pipeline of this GHL location; its pipelines: {names}",
        )
    stages = ", ".join(repr(name) for name, _ in item.stages) or "none"
    return UnknownPipelineError(
        f"opportunities.{setting}_stages",
        stage,
        f"is not a stage of the GHL pipeline {item.name!r} (map the DripJobs stage to one of "
        f"its stages in ghlsync.yaml); its stages: {stages}",
    )


def _may_refresh(entry: tuple[float, list[Pipeline]] | None, clock: Clock) -> bool:
    return entry is None or clock.now() - entry[0] >= REFRESH_AFTER


async def _read(engine: sa.Engine | None, location_id: str) -> tuple[float, list[Pipeline]] | None:
    if engine is None:
        return _read_sync(None, location_id)
    return await asyncio.to_thread(_read_sync, engine, location_id)


def _read_sync(engine: sa.Engine | None, location_id: str) -> tuple[float, list[Pipeline]] | None:
    if engine is None:
        with _lock:
            return _memory.get(location_id)
    with engine.connect() as conn:
        return _load(conn, location_id)


def _load(conn: sa.Connection, location_id: str) -> tuple[float, list[Pipeline]] | None:
    row = conn.execute(
        sa.select(ghl_pipelines.c.pipelines, ghl_pipelines.c.fetched_at).where(
            ghl_pipelines.c.location_id == location_id
        )
    ).first()
    if row is None:
        return None
    items = [
        Pipeline(str(p["id"]), str(p["name"]), tuple((str(n), str(i)) for n, i in p["stages"]))
        for p in json.loads(row.pipelines)
    ]
    return float(row.fetched_at), items


def _save(engine: sa.Engine, location_id: str, pipelines: list[Pipeline], now: float) -> None:
    text = json.dumps([{"id": p.id, "name": p.name, "stages": p.stages} for p in pipelines])
    insert: Any = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
    statement = insert(ghl_pipelines).values(
        location_id=location_id, pipelines=text, fetched_at=now
    )
    statement = statement.on_conflict_do_update(
        index_elements=["location_id"],
        set_={
            "pipelines": statement.excluded.pipelines,
            "fetched_at": statement.excluded.fetched_at,
        },
    )
    with engine.begin() as conn:
        conn.execute(statement)


def _parse(answer: Any) -> list[Pipeline]:
    items = answer.get("pipelines", []) if isinstance(answer, Mapping) else []
    found: list[Pipeline] = []
    for item in items:
        if not isinstance(item, Mapping) or not item.get("id"):
            continue
        stages = tuple(
            (str(s.get("name", "")), str(s["id"]))
            for s in item.get("stages") or []
            if isinstance(s, Mapping) and s.get("id")
        )
        found.append(Pipeline(str(item["id"]), str(item.get("name", "")), stages))
    return found
