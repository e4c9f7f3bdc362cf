"""The `opportunities:` section of `ghlsync.yaml` (the typed shape; see `_opportunities`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

PipelineKind = Literal["deal", "project"]
# The GHL statuses that close a card; `deal_statuses` maps each to a DripJobs stage.
ClosedStatus = Literal["won", "lost", "abandoned"]
CLOSED_STATUSES: tuple[str, ...] = ClosedStatus.__args__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class DealEvent:
    """What one DripJobs event means for the customer's card."""

    pipeline: PipelineKind
    stage_field: str
    status: str | None = None


DEAL_EVENTS: dict[str, DealEvent] = {
    "deal.stage_changed": DealEvent("deal", "deal_stage"),
    "proposal.accepted": DealEvent("deal", "deal_stage", "won"),
    "proposal.rejected": DealEvent("deal", "deal_stage", "lost"),
    "project.stage_changed": DealEvent("project", "project_stage"),
    "project.completed": DealEvent("project", "project_stage", "won"),
}


def _listify(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


def _fold_keys(value: Any) -> Any:
    """`Won:` and ` won ` are `won` (a status is a fixed word; the stage name stays as typed)."""
    if isinstance(value, dict):
        return {k.strip().casefold() if isinstance(k, str) else k: v for k, v in value.items()}
    return value


class OpportunitySettings(BaseModel):
    """Which GHL pipelines deals and projects go to, and their stage names."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    deal_pipeline: str | None = Field(None, min_length=1)  # GHL pipeline name (or id)
    deal_stages: dict[str, str] = {}  # DripJobs deal stage → GHL stage name
    # GHL status of a deal card → DripJobs deal stage: the `move_deal` a status set in GHL
    # becomes, and the status a deal moved to that stage gets (docs/pipelines.md).
    deal_statuses: Annotated[
        dict[ClosedStatus, Annotated[str, Field(min_length=1)]], BeforeValidator(_fold_keys)
    ] = {}
    project_pipeline: str | None = Field(None, min_length=1)
    project_stages: dict[str, str] = {}
    amount_fields: Annotated[list[str], BeforeValidator(_listify)] = [
        "proposal_amount",
        "proposal_total",
        "amount",
    ]
    assignee_field: str = "salesperson"  # a name or email from the `users:` table

    @field_validator("deal_statuses")
    @classmethod
    def _one_status_per_stage(cls, value: dict[str, str]) -> dict[str, str]:
        seen: dict[str, str] = {}
        for status, stage in value.items():
            other = seen.setdefault(stage.strip().casefold(), status)
            if other != status:
                raise ValueError(
                    f"{other} and {status} both name the DripJobs stage {stage!r}; "
                    "give each status its own stage"
                )
        return value

    def pipeline(self, kind: str) -> str | None:
        """The configured GHL pipeline of `deal` or `project` (None: no cards for it)."""
        return self.deal_pipeline if kind == "deal" else self.project_pipeline

    def stages(self, kind: str) -> dict[str, str]:
        """The DripJobs → GHL stage names of `deal` or `project`."""
        return self.deal_stages if kind == "deal" else self.project_stages

    def dripjobs_stage(self, kind: str, ghl_stage: str) -> str:
        """The DripJobs stage for a GHL stage name: the first `*_stages` entry naming it
        (case-insensitive), else the same name (the reverse of `ghl_stage`)."""
        folded = ghl_stage.casefold()
        found = (k for k, v in self.stages(kind).items() if v.casefold() == folded)
        return next(found, ghl_stage)

    def ghl_stage(self, kind: str, dripjobs_stage: str) -> str:
        """The GHL stage name for a DripJobs stage (case-insensitive; unmapped: the same)."""
        table = {k.casefold(): v for k, v in self.stages(kind).items()}
        return table.get(dripjobs_stage.casefold(), dripjobs_stage)

    def status_stage(self, kind: str, status: str) -> str | None:
        """The DripJobs stage a GHL status maps to (`deal_statuses`; projects: none)."""
        if kind != "deal":
            return None
        return next((v for k, v in self.deal_statuses.items() if k == status), None)

    def stage_status(self, kind: str, dripjobs_stage: str) -> str | None:
        """The GHL status a DripJobs stage stands for (the reverse of `status_stage`,
        case-insensitive), or None for an ordinary stage."""
        if kind != "deal":
            return None
        folded = dripjobs_stage.strip().casefold()
        found = (k for k, v in self.deal_statuses.items() if v.strip().casefold() == folded)
        return next(found, None)
