"""The `opportunities:` section of `ghlsync.yaml` (the typed shape; see `_opportunities`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

PipelineKind = Literal["deal", "project"]


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


class OpportunitySettings(BaseModel):
    """Which GHL pipelines deals and projects go to, and their stage names."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    deal_pipeline: str | None = Field(None, min_length=1)  # GHL pipeline name (or id)
    deal_stages: dict[str, str] = {}  # DripJobs deal stage → GHL stage name
    project_pipeline: str | None = Field(None, min_length=1)
    project_stages: dict[str, str] = {}
    amount_fields: Annotated[list[str], BeforeValidator(_listify)] = [
        "proposal_amount",
        "proposal_total",
        "amount",
    ]
    assignee_field: str = "salesperson"  # a name or email from the `users:` table

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
