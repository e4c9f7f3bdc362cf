"""Pipelines by name: `Sales pipeline` / `Estimate booked` → GHL's pipeline and stage ids.

The mapping names pipelines and stages as people see them in GHL; an upsert wants ids. The
location's pipelines (`GET /opportunities/pipelines`) are kept in this process for
`REFRESH_AFTER` seconds and fetched again on a miss at most that often, so a typo in the
mapping costs one call per window, not one per event. A dry run (`preview`) never fetches.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ghlsync._clock import Clock
from ghlsync.engine.flows.to_ghl._plan import PlannedCall, Sender
from ghlsync.mapping import MappingError

REFRESH_AFTER = 300.0


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


_cache: dict[str, tuple[float, list[Pipeline]]] = {}
_lock = threading.Lock()


def forget_pipelines() -> None:
    """Drop every cached pipeline list (tests; a changed GHL set-up is seen after the window)."""
    with _lock:
        _cache.clear()


async def resolve(
    sender: Sender,
    location_id: str,
    clock: Clock,
    pipeline: str,
    stage: str | None,
    setting: str,
) -> tuple[str, str | None]:
    """(pipeline id, stage id or None) for names from the mapping.

    Raises `UnknownPipelineError` naming `setting` and listing what the location has. A dry
    run without a cached list answers with the names in angle brackets instead.
    """
    known = _cached(location_id, clock)
    found = _match(known or [], pipeline, stage)
    if found is None and sender.live and _may_refresh(location_id, clock):
        known = await _refresh(sender, location_id, clock)
        found = _match(known, pipeline, stage)
    if found is not None:
        return found
    if not sender.live and known is None:
        return f"<pipeline {pipeline}>", (f"<stage {stage}>" if stage else None)
    raise _unknown(known or [], pipeline, stage, setting)


def cached_stage(location_id: str, pipeline_id: str, stage_id: str) -> tuple[str, str] | None:
    """(pipeline name, stage name) of a stage id from the cached list, if known.

    For the way back (a card moved in GHL → a DripJobs `move_deal` with the stage name): no
    call, so a GHL event never costs a request to read.
    """
    for item in _cached(location_id, None) or []:
        if item.id == pipeline_id:
            name = next((n for n, sid in item.stages if sid == stage_id), None)
            return (item.name, name) if name is not None else None
    return None


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


def _cached(location_id: str, clock: Clock | None) -> list[Pipeline] | None:
    with _lock:
        entry = _cache.get(location_id)
    return entry[1] if entry is not None else None


def _may_refresh(location_id: str, clock: Clock) -> bool:
    with _lock:
        entry = _cache.get(location_id)
    return entry is None or clock.now() - entry[0] >= REFRESH_AFTER


async def _refresh(sender: Sender, location_id: str, clock: Clock) -> list[Pipeline]:
    answer = await sender.send(
        PlannedCall(
            "GET",
            "/opportunities/pipelines",
            params={"locationId": location_id},
            purpose="pipelines",
        )
    )
    pipelines = _parse(answer)
    with _lock:
        _cache[location_id] = (clock.now(), pipelines)
    return pipelines


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
