"""`POST /hooks/dripjobs/{event}`: the path of one delivery from raw bytes to a durable commit.

Order matters: size limit → verify the raw bytes → parse → fold keys → entity key → one
transaction through `accept()` → answer. Nothing is parsed before the sender is verified, and
nothing is acknowledged before it is committed.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ghlsync._clock import Clock
from ghlsync.dripjobs import BodyError, VerificationError, delivery_id, fold_keys, parse_body
from ghlsync.dripjobs._verify import DEFAULT_TOLERANCE_SECONDS
from ghlsync.engine import Delivery, delivery_key
from ghlsync.mapping import Mapper, MappingError, UnknownEventError
from ghlsync.server._commit import CommitterClosed, GroupCommitter
from ghlsync.server._connections import (
    DEFAULT_CONNECTION,
    Connection,
    Connections,
    Refused,
    Unconfigured,
    unknown_connection,
)
from ghlsync.server._limits import DEFAULT_BODY_TIMEOUT, receive_body
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
        body_timeout: float = DEFAULT_BODY_TIMEOUT,
        tolerance_seconds: float = DEFAULT_TOLERANCE_SECONDS,
    ) -> None:
        self._connections = connections
        self._mapper = mapper
        self._committer = committer
        self._metrics = metrics
        self._clock = clock
        self._max_body_bytes = max_body_bytes
        self._body_timeout = body_timeout
        self._tolerance = tolerance_seconds  # of the stand-in for unknown connections

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
            self._metrics.accepted(delivery.event)
            return accepted(delivery.delivery_id or delivery_key(delivery))
        self._metrics.duplicate(delivery.event)
        return duplicate()

    def _refuse(self, rejection: Rejection) -> Response:
        self._metrics.rejected(rejection.code)
        return rejection.response()

    async def _delivery(self, request: Request) -> Delivery:
        scope = request.scope  # read directly: `Request.headers` would build its own copy
        params = scope.get("path_params", {})
        connection = self._connection(params.get("connection", DEFAULT_CONNECTION))
        headers = header_map(scope["headers"])
        body = await self._read(request, headers.get("content-length"))
        try:
            connection.verifier.verify(headers, body, now=self._clock.now())
        except Refused as exc:  # authenticated, and refused anyway (revoked, misconfigured)
            raise Rejection(exc.status, exc.code, exc.message) from None
        except VerificationError as exc:
            raise Rejection(401, exc.code, exc.message) from None
        event: str = params["event"]
        payload = _parse(headers.get("content-type"), body)
        return self._build(connection, event, payload, headers)

    def _connection(self, name: str) -> Connection:
        found = self._connections.get(name)
        if found is None:  # answered exactly as a wrong secret would be
            return unknown_connection(name, self._tolerance)
        if isinstance(found, Unconfigured):
            raise Rejection(503, "not_configured", found.reason)
        return found

    async def _read(self, request: Request, declared: str | None) -> bytes:
        limit, seconds = self._max_body_bytes, self._body_timeout
        return await receive_body(request.receive, declared, limit, max_seconds=seconds)

    def _build(
        self, connection: Connection, event: str, payload: dict[str, Any], headers: dict[str, str]
    ) -> Delivery:
        mapper = connection.mapper or self._mapper  # a location's mapping override
        try:
            key, updated_at = mapper.identify(event, payload, folded=True)  # by `_parse`
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


def header_map(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """The request's headers by name, as Starlette's `Headers.get` reads them: names as sent
    (ASGI servers lower-case them), latin-1, and the first of a repeated name wins."""
    return {name.decode("latin-1"): value.decode("latin-1") for name, value in reversed(raw)}


# Types a JSON body arrives under when the sender did not say: none at all, curl's `-d` default
# (a form) and `fetch()`'s default for a string (text/plain).
_UNDECLARED = ("", "application/x-www-form-urlencoded", "text/plain")


def _parse(content_type: str | None, body: bytes) -> dict[str, Any]:
    sniffed = _sniffed_json(content_type, body)
    try:
        return fold_keys(parse_body(sniffed or content_type, body))
    except BodyError as exc:
        message = exc.message
        if sniffed:
            message += (
                " (the body starts with '{', so it was read as JSON although its Content-Type "
                f"is {content_type or 'missing'}: send valid JSON with "
                "'Content-Type: application/json', or a form)"
            )
        raise Rejection(400, exc.code, message) from None


def _sniffed_json(content_type: str | None, body: bytes) -> str | None:
    """`application/json` for a JSON object sent without saying so, else None."""
    if _undeclared(content_type) and body.lstrip().startswith(b"{"):
        return "application/json"
    return None


@functools.lru_cache(maxsize=256)  # a sender uses the same Content-Type on every delivery
def _undeclared(content_type: str | None) -> bool:
    return (content_type or "").split(";", 1)[0].strip().lower() in _UNDECLARED
