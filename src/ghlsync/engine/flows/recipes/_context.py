"""What an action's `run` gets (`StepContext`) and gives back (`StepResult`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from ghlsync._clock import Clock
from ghlsync.engine.flows.to_ghl._plan import PlannedCall, Sender
from ghlsync.ghl._operations import OPERATIONS
from ghlsync.mapping import AppConfig, MappingError


@dataclass(slots=True)
class StepContext:
    """One step of one recipe run, for one contact of one location.

    `pending` is the request body an earlier attempt of this very step announced and may have
    sent (a crash between sending and recording): an action that creates something looks for
    it before creating it again. `key` is the step's idempotency key.
    """

    engine: sa.Engine
    sender: Sender
    config: AppConfig
    clock: Clock
    location_id: str
    contact_id: str | None
    calendar_id: str | None
    key: str
    fields: Mapping[str, Any] = field(default_factory=dict)
    base_at: float = 0.0
    pending: Mapping[str, Any] | None = None
    announced: dict[str, Any] | None = None

    @property
    def live(self) -> bool:
        """False in a dry run (`recipes test`, `preview`): nothing is sent or written."""
        return self.sender.live

    @property
    def zone(self) -> ZoneInfo:
        """The location's time zone (relative dates are read in it)."""
        return ZoneInfo(self.config.output_timezone)

    def contact(self) -> str:
        """The GHL contact id the step acts on; MappingError when the event has none."""
        if not self.contact_id:
            raise MappingError("contact", None, "is unknown: this step needs the GHL contact")
        return self.contact_id

    async def send(
        self,
        operation_id: str,
        path: Mapping[str, str] | None = None,
        body: Any = None,
        params: Mapping[str, str] | None = None,
    ) -> Any:
        """Send one registered operation through the flows' sender (limiter, retries)."""
        operation = OPERATIONS[operation_id]
        call = PlannedCall(
            method=operation.method,
            path=operation.format_path(path or {}),
            body=body,
            params=dict(params) if params else None,
            version=operation.version,
            purpose=f"recipe {operation_id}",
            idempotent=operation.idempotent,
        )
        return await self.sender.send(call)


@dataclass(frozen=True, slots=True)
class StepResult:
    """What a step did: the GHL (or outbox) id it made or touched, and a word for people."""

    ghl_id: str | None = None
    detail: str = ""


def operation_text(operation_id: str) -> str:
    """`"POST /contacts/{contactId}/tasks"` for a registered operation."""
    operation = OPERATIONS[operation_id]
    return f"{operation.method} {operation.path}"
