"""Shared by the mapping snapshot and schema tests: the golden events and how they render."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ghlsync._clock import FakeClock
from ghlsync.mapping import AppConfig, MappedEntity, Mapper, MappingError, content_hash

GOLDEN = Path(__file__).resolve().parent / "golden"
EVENTS = sorted((GOLDEN / "events").glob("*.json"))
NOW = 1_796_000_000.0  # 2026-11-29T01:33:20Z: golden files must not depend on the day they run


def golden_mapper() -> Mapper:
    return Mapper(AppConfig.default(), clock=FakeClock(start=NOW))


def load_event(path: Path) -> tuple[str, dict[str, Any]]:
    data = json.loads(path.read_text())
    return data["event"], data["payload"]


def render_entity(entity: MappedEntity) -> dict[str, Any]:
    rendered = entity.to_dict()
    rendered["content_hash"] = content_hash(entity)
    if entity.action != "delete":
        for operation in ("create", "update"):
            try:
                rendered[f"{operation}_body"] = entity.request_body(operation)
            except MappingError as error:
                rendered[f"{operation}_body"] = f"MappingError: {error}"
    return rendered


def render(mapper: Mapper, event: str, payload: dict[str, Any]) -> dict[str, Any]:
    try:
        mapped = mapper.map(event, payload)
    except MappingError as error:
        return {"event": event, "error": f"{type(error).__name__}: {error}"}
    return {"event": event, "entities": [render_entity(e) for e in mapped.entities]}
