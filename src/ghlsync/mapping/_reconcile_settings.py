"""`reconcile:` in `ghlsync.yaml`: the periodic sweep `ghlsync serve` runs (docs/reconcile.md)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")


def _seconds(value: Any) -> Any:
    """`6h`, `30m`, `90s`, `1d` or a number of seconds; anything else is left for pydantic to
    refuse with its own message."""
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match is None:
            raise ValueError("a duration like 6h, 30m, 90s or 1d (or seconds)")
        return float(match.group(1)) * _UNITS[match.group(2) or "s"]
    return value


Duration = Annotated[float, BeforeValidator(_seconds)]


class ReconcileSettings(BaseModel):
    """How often `serve` sweeps each location, and how much of its rate budget it may use."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Off: `serve` never sweeps (`ghlsync reconcile` still works by hand).
    enabled: bool = True
    # Time from the end of one sweep of a location to the start of the next.
    every: Duration = Field(6 * 3600.0, ge=1.0, description="seconds (or 6h, 30m, 1d)")
    # Share of the location's rate limit the sweep may use; live sync keeps the rest.
    budget: float = Field(0.1, gt=0.0, le=1.0)
    # Apply the safe repairs (as `ghlsync reconcile --repair`); off: report only.
    repair: bool = False
