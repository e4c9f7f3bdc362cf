"""Request bodies of opportunities (`apps/opportunities.json`) and the answers we read."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field

from ghlsync.ghl._models._base import Answer, Body

Status = Literal["open", "won", "lost", "abandoned", "all"]


class CreateOpportunity(Body):
    """`POST /opportunities/` (`CreateDto`)."""

    pipeline_id: str
    location_id: str
    name: str
    status: Status
    contact_id: str
    pipeline_stage_id: str | None = None
    monetary_value: float | None = None
    assigned_to: str | None = None
    custom_fields: list[dict[str, Any]] | None = None


class UpdateOpportunity(Body):
    """`PUT /opportunities/{id}` (`UpdateOpportunityDto`); every field optional."""

    pipeline_id: str | None = None
    name: str | None = None
    pipeline_stage_id: str | None = None
    status: Status | None = None
    monetary_value: float | None = None
    assigned_to: str | None = None
    custom_fields: list[dict[str, Any]] | None = None


class UpsertOpportunity(Body):
    """`POST /opportunities/upsert` (`UpsertOpportunityDto`).

    GHL matches on `contactId` + `pipelineId` (or `id`). The spec omits `contactId` and marks
    the follower fields required; GHL's reference documents `contactId` and takes the upsert
    without followers, so `contactId` is accepted and the follower fields are optional here.
    """

    pipeline_id: str
    location_id: str
    contact_id: str | None = None
    id: str | None = None
    name: str | None = None
    status: Status | None = None
    pipeline_stage_id: str | None = None
    monetary_value: float | None = None
    assigned_to: str | None = None
    lost_reason_id: str | None = None
    followers: list[str] | None = None
    is_remove_all_followers: bool | None = None
    followers_action_type: Literal["add", "remove"] | None = None


class UpdateOpportunityStatus(Body):
    """`PUT /opportunities/{id}/status`."""

    status: Status
    lost_reason_id: str | None = None


class SearchOpportunities(Body):
    """`POST /opportunities/search` (`OpportunitySearchBodyDTO`).

    `filters` and `sort` are not in the schema but in the reference it links (GHL takes them).
    """

    location_id: str
    query: str | None = None
    limit: int | None = None
    page: int | None = None
    search_after: list[Any] | None = None
    additional_details: dict[str, bool] | None = None
    filters: list[dict[str, Any]] | None = None
    sort: list[dict[str, Any]] | None = None


class OpportunityFollowers(Body):
    """`POST|DELETE /opportunities/{id}/followers`."""

    followers: list[str]


class PipelineStage(Answer):
    """One stage of a pipeline (GHL sends `id`, `name`, `position`)."""

    id: str
    name: str = ""
    position: int | None = None


def _stage_objects(value: Any) -> Any:
    """GHL sends stage objects; the spec declares an array of arrays: keep only objects."""
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else value


class Pipeline(Answer):
    """A pipeline of a location with its stages in order."""

    id: str
    name: str = ""
    stages: Annotated[list[PipelineStage], BeforeValidator(_stage_objects)] = Field(
        default_factory=list
    )


class Opportunity(Answer):
    """An opportunity (a deal card in a pipeline)."""

    id: str = ""  # empty only if GHL leaves it out (the spec declares a bare object for upsert)
    name: str | None = None
    pipeline_id: str | None = None
    pipeline_stage_id: str | None = None
    status: str | None = None
    monetary_value: float | None = None
    assigned_to: str | None = None
    contact_id: str | None = None
    location_id: str | None = None


class OpportunityUpsert(Answer):
    """The answer of `POST /opportunities/upsert`: the opportunity, and whether it is new."""

    opportunity: Opportunity
    new: bool = False
