"""What every sandbox location starts with for opportunities: pipelines, lost reasons,
workflows and campaigns (GHL's API cannot create these; an account sets them up in the UI).

Ids are stable per location (uuid5 of the location and name), so tests and docs can name them.
"""

from __future__ import annotations

import uuid
from typing import Any

Record = dict[str, Any]  # as in `_state`, which imports this module

DEFAULT_PIPELINES: dict[str, tuple[str, ...]] = {
    "Sales pipeline": (
        "New lead",
        "Estimate booked",
        "Proposal sent",
        "Won",
        "Lost",
    ),
    "Production": ("Scheduled", "In progress", "Completed"),
}
DEFAULT_LOST_REASONS = ("Too expensive", "Went with a competitor")
DEFAULT_WORKFLOWS = ("New lead nurture", "Review request")
DEFAULT_CAMPAIGNS = ("Spring promotion",)
_NS = uuid.UUID("6f1c8a52-1d0e-4b8e-9a51-0c2f5e7d3b10")


def stable_id(location_id: str, *names: str, length: int = 20) -> str:
    """A GHL-shaped id (letters and digits) that is the same for the same names."""
    return uuid.uuid5(_NS, "/".join((location_id, *names))).hex[:length]


def stage_id(location_id: str, pipeline: str, stage: str) -> str:
    """Stage ids are UUIDs in GHL."""
    return str(uuid.uuid5(_NS, "/".join((location_id, pipeline, stage))))


def pipelines_for(location_id: str) -> dict[str, Record]:
    """The start pipelines of a location, by id, stages in order."""
    found: dict[str, Record] = {}
    for name, stages in DEFAULT_PIPELINES.items():
        pipeline_id = stable_id(location_id, "pipeline", name)
        found[pipeline_id] = {
            "id": pipeline_id,
            "name": name,
            "locationId": location_id,
            "showInFunnel": True,
            "showInPieChart": True,
            "stages": [
                {"id": stage_id(location_id, name, stage), "name": stage, "position": position}
                for position, stage in enumerate(stages)
            ],
        }
    return found


def named_records(
    location_id: str, kind: str, names: tuple[str, ...], **extra: str
) -> dict[str, Record]:
    """Records with only an id and a name (lost reasons, workflows, campaigns)."""
    found: dict[str, Record] = {}
    for name in names:
        record_id = stable_id(location_id, kind, name)
        found[record_id] = {"id": record_id, "name": name, "locationId": location_id, **extra}
    return found
