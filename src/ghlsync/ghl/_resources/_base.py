"""What every resource group shares: a handle on the client's `call`, and body helpers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel

from ghlsync.ghl._models import Ack

_M = TypeVar("_M", bound=BaseModel)


class Caller(Protocol):
    """The part of `GHLClient` resources use."""

    async def call(
        self,
        operation_id: str,
        *,
        key: str,
        path_params: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
    ) -> Any: ...


class Resource:
    """A group of operations (`client.contacts`, `client.tasks`, ...)."""

    def __init__(self, client: Caller) -> None:
        self._client = client

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"

    async def _call(
        self,
        operation_id: str,
        location_id: str,
        *,
        path: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
    ) -> Any:
        return await self._client.call(
            operation_id, key=location_id, path_params=path, params=params, body=body
        )

    async def _ack(self, operation_id: str, location_id: str, **kwargs: Any) -> Ack:
        return Ack.model_validate(await self._call(operation_id, location_id, **kwargs) or {})


def with_location(body: Any, location_id: str) -> Any:
    """`body` with `locationId` filled in when the caller left it out."""
    if isinstance(body, BaseModel):
        return body
    data = dict(body or {})
    if "locationId" not in data and "location_id" not in data:
        data["locationId"] = location_id
    return data


def field(answer: Any, name: str) -> Any:
    """`answer[name]` when the answer is an object holding it, else the answer itself."""
    if isinstance(answer, Mapping) and name in answer:
        return answer[name]
    return answer


def parse(model: type[_M], answer: Any, name: str) -> _M:
    """Validate the object GHL wraps under `name` (e.g. `{"contact": {...}}`)."""
    return model.model_validate(field(answer, name))


def parse_list(model: type[_M], answer: Any, name: str) -> list[_M]:
    """Validate the list GHL wraps under `name` (e.g. `{"tasks": [...]}`)."""
    return [model.model_validate(item) for item in field(answer, name) or []]
