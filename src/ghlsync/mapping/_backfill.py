"""The `backfill:` section of ghlsync.yaml: how `ghlsync backfill` reads DripJobs CSV exports."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["DEFAULT_KINDS", "BackfillSettings"]

# Which configured event a row of each export kind is sent through (the same rules as the
# webhook of that event): a customer list is a customer update, a lead list adds the preset's
# `lead` tag, a jobs list carries the project stage.
DEFAULT_KINDS = {
    "customers": "customer.updated",
    "leads": "lead.created",
    "jobs": "project.stage_changed",
}


class BackfillSettings(BaseModel):
    """Columns, kinds and pacing of `ghlsync backfill`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # CSV header (any spelling: folded like webhook keys) → the DripJobs field it holds, on
    # top of the export columns the preset knows (docs/backfill.md, "Column names").
    columns: dict[str, str] = {}
    # --kind → the event whose rules a row goes through (must be one of `events:`).
    kinds: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_KINDS))
    # Rows queued or in flight at once: a live webhook waits behind at most this many.
    window: int = Field(32, ge=1, le=10_000)
    # Rows read, matched and queued per transaction (and per checkpoint).
    batch: int = Field(16, ge=1, le=1_000)
