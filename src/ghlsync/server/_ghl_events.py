"""GHL events (ContactCreate, TaskComplete, AppointmentUpdate, ..., and for recipes any type a
recipe names, e.g. InvoicePaid) into the inbox.

Two-way sync: a verified GHL event for a served location is committed into the same inbox
and work-row machinery as DripJobs deliveries (`engine.queue._inbox.accept`), keyed
`ghl_<entity>` + the GHL id, deduplicated by `webhookId`; the answer (200) is given only
after the commit. A store that cannot take it raises, and the receiver answers 429 (the only
answer GHL retries).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

import sqlalchemy as sa
from starlette.responses import Response

from ghlsync._clock import SYSTEM_CLOCK, Clock
from ghlsync.engine.flows.to_dripjobs._events import ghl_delivery, is_ghl_event
from ghlsync.engine.queue._inbox import Delivery, accept
from ghlsync.server._responses import json_response
from ghlsync.store._engine import begin_immediate

__all__ = ["GHLEventIntake", "is_ghl_event"]


class GHLEventIntake:
    """Commits GHL events durably; `take` answers once the commit is done.

    `takes(type)`: whether an event type is wanted (two-way's record events when a write-back
    URL is configured, and every type an enabled recipe starts on or is cancelled by)."""

    def __init__(
        self,
        engine: sa.Engine,
        clock: Clock = SYSTEM_CLOCK,
        wanted: Callable[[str], bool] = is_ghl_event,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._wanted = wanted

    def takes(self, kind: str) -> bool:
        """True when events of this type go to the inbox."""
        return self._wanted(kind)

    async def take(self, event: Mapping[str, Any]) -> Response:
        """200 `accepted` (or `duplicate`) after the commit; 400 for an event naming no record."""
        try:
            delivery = ghl_delivery(event, received_at=self._clock.now())
        except ValueError as exc:
            return json_response(400, {"error": "malformed_event", "message": str(exc)})
        fresh = await asyncio.to_thread(self._commit, delivery)
        status = "accepted" if fresh else "duplicate"
        return json_response(200, {"status": status, "type": delivery.event})

    def _commit(self, delivery: Delivery) -> bool:
        with begin_immediate(self._engine) as conn:
            return accept(conn, delivery)
