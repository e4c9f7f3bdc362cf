"""`POST /hooks/dripjobs/{event}`: the path of one delivery from raw bytes to a durable commit.

Order matters: size limit → verify the raw bytes → parse → fold keys → entity key → one
transaction through `accept()` → answer. Nothing is parsed before the sender is verified, and
nothing is acknowledged before it is committed.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ghlsync._clock import Clock
from ghlsync.dripjobs import BodyError, VerificationError, delivery_id, fold_keys, parse_body
from ghlsync.engine import Delivery, delivery_key
from ghlsync.mapping import Mapper, MappingError, UnknownEventError
from ghlsync.server._commit import CommitterClosed, GroupCommitter
from ghlsync.server._connections import (
    DEFAULT_CONNECTION,
    Connection,
    Connections,
    Unconfigured,
)
from ghlsync.server._limits import BodyIncomplete, BodyTooLarge, read_limited
from ghlsync.server._metrics import ReceiverMetrics
from ghlsync.server._responses import Rejection, accepted, duplicate

_log = logging.getLogger("ghlsync.server")


class DripJobsReceiver:
    """Turns verified deliveries into committed inbox and work rows."""

    def __init__(
        self,
        *,
        connections: Connections,
        mapper: Mapper,
        committer: GroupCommitter[Delivery],
        metrics: ReceiverMetrics,
        clock: Clock,
        max_body_bytes: int,
    ) -> None:
        self._connections = connections
        self._mapper = mapper
        self._committer = committer
        self._metrics = metrics
        self._clock = clock
        self._max_body_bytes = max_body_bytes

    async def handle(self, request: Request) -> Response:
        """The whole answer to one delivery; every refusal is a JSON error."""
        try:
            delivery = await self._delivery(request)
        except Rejection as rejection:
            return self._refuse(rejection)
        return await self._store(delivery)

    async def _store(self, delivery: Delivery) -> Response:
        """Commit, then answer: 202 for a new delivery, 200 for a duplicate, 503 on failure."""
        try:
            fresh = await self._committer.submit(delivery)
        except CommitterClosed:
            return self._refuse(Rejection(503, "shutting_down", "the receiver is stopping; retry"))
        except Exception as exc:  # the store failed: nothing was committed, the sender retries
            _log.exception("could not store a %s delivery", delivery.event)
            message = f"the delivery could not be stored ({exc.__class__.__name__}); retry"
            return self._refuse(Rejection(503, "store_unavailable", message))
        if fresh:
            self._metrics.accepted()
            return accepted(delivery.delivery_id or delivery_key(delivery))
        self._metrics.duplicate()
        return duplicate()

    def _refuse(self, rejection: Rejection) -> Response:
        self._metrics.rejected(rejection.code)
        return rejection.response()

    async def _delivery(self, request: Request) -> Delivery:
        params = request.path_params
        connection = self._connection(params.get("connection", DEFAULT_CONNECTION))
        body = await self._read(request)
        headers = request.headers
        try:
            connection.verifier.verify(headers, body, now=self._clock.now())
        except VerificationError as exc:
            raise Rejection(401, exc.code, exc.message) from None
        event: str = params["event"]
        payload = _parse(headers.get("content-type"), body)
        return self._build(connection, event, payload, headers)

    def _connection(self, name: str) -> Connection:
        found = self._connections.get(name)
        if found is None:
            raise Rejection(404, "unknown_connection", f"no connection named {name!r}")
        if isinstance(found, Unconfigured):
            raise Rejection(503, "not_configured", found.reason)
        return found

    async def _read(self, request: Request) -> bytes:
        try:
            return await read_limited(request, self._max_body_bytes)
        except BodyTooLarge as exc:
            raise Rejection(413, "body_too_large", exc.message) from None
        except BodyIncomplete:
            raise Rejection(400, "incomplete_body", "the client disconnected mid-body") from None

    def _build(
        self, connection: Connection, event: str, payload: dict[str, Any], headers: Any
    ) -> Delivery:
        mapper = connection.mapper or self._mapper  # a location's mapping override
        try:
            key = mapper.entity_key(event, payload)
            updated_at = mapper.source_updated_at(event, payload)
        except UnknownEventError as exc:
            raise Rejection(404, "unknown_event", str(exc)) from None
        except MappingError as exc:
            raise Rejection(400, "invalid_field", str(exc)) from None
        return Delivery(
            connection_id=connection.connection_id,
            location_id=connection.location_id,
            event=event,
            delivery_id=delivery_id(payload, headers),
            payload=payload,
            entity_type=key.type,
            source_id=key.source_id,
            source_updated_at=None if updated_at is None else updated_at.timestamp(),
            received_at=self._clock.now(),
            action=mapper.config.events[event].action,
        )


def _parse(content_type: str | None, body: bytes) -> dict[str, Any]:
    try:
        return fold_keys(parse_body(content_type, body))
    except BodyError as exc:
        raise Rejection(400, exc.code, exc.message) from None
