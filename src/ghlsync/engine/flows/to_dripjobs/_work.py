"""The GHL-side work a decision is about, and what the decision did."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Decision", "GHLWork"]


@dataclass(frozen=True, slots=True)
class GHLWork:
    """One claimed GHL-side work row, as the decision needs it."""

    location_id: str
    entity: str  # contact | appointment | task | note
    ghl_id: str
    events: Sequence[str]
    payload: Mapping[str, Any]
    version: float | None


@dataclass(slots=True)
class Decision:
    """What the decision did: `action` for the audit log, the write-backs it queued."""

    action: str
    detail: str = ""
    queued: list[tuple[str, str, str]] = field(default_factory=list)  # (action, id, status)
    kept: dict[str, Any] = field(default_factory=dict)
