"""Opportunity request bodies as `apps/opportunities.json` declares them (whitelist-strict).

Where the spec and GHL differ the sandbox follows GHL (docs/sandbox.md): the upsert takes
`contactId` (the spec leaves it out) and a number for `monetaryValue` (typed `object`), and
does not require the follower fields.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import field_validator

from ghlsync.sandbox._models import Body, finite, optional

Status = Literal["open", "won", "lost", "abandoned", "all"]


class _Fields(Body):
    """The fields create, update and upsert share."""

    pipelineId: str = optional()
    name: str = optional()
    pipelineStageId: str = optional()
    status: Status = optional()
    monetaryValue: float = optional()
    assignedTo: str = optional()


class CreateOpportunity(_Fields):
    """`CreateDto`."""

    pipelineId: str
    locationId: str
    name: str
    status: Status
    contactId: str
    customFields: list[dict[str, Any]] = optional()

    @field_validator("customFields")
    @classmethod
    def _finite(cls, value: list[Any]) -> list[Any]:
        return list(finite(value))


class UpdateOpportunity(_Fields):
    """`UpdateOpportunityDto`."""

    customFields: list[dict[str, Any]] = optional()

    @field_validator("customFields")
    @classmethod
    def _finite(cls, value: list[Any]) -> list[Any]:
        return list(finite(value))


class UpsertOpportunity(_Fields):
    """`UpsertOpportunityDto` (plus `contactId`, see the module docstring)."""

    pipelineId: str
    locationId: str
    id: str = optional()
    contactId: str = optional()
    lostReasonId: str = optional()
    followers: list[str] = optional()
    isRemoveAllFollowers: bool = optional()
    followersActionType: Literal["add", "remove"] = optional()


class UpdateStatus(Body):
    """`UpdateStatusDto`."""

    status: Status
    lostReasonId: str = optional()


class SearchBody(Body):
    """`OpportunitySearchBodyDTO`; only `locationId` is needed in practice."""

    locationId: str
    query: str = optional()
    limit: int = optional()
    page: int = optional()
    searchAfter: list[Any] = optional()
    additionalDetails: dict[str, bool] = optional()

    @field_validator("searchAfter")
    @classmethod
    def _finite(cls, value: list[Any]) -> list[Any]:
        return list(finite(value))
