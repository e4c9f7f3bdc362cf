"""`GET /healthz` and `GET /metrics`, with their detail behind `server.admin_token` when set.

The detail (location ids, queue depths, delivery counts) is for the operator, not for whoever
can reach the port. With an admin token configured, `/healthz` without it answers only
`{"status": ...}` (the same status code: a load balancer's liveness probe needs nothing more)
and `/metrics` answers 401. Without one, both are public, as on a loopback-only server.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response

from ghlsync._clock import Clock
from ghlsync._secret import Secret
from ghlsync.server._health import WorkerState, health_report
from ghlsync.server._metrics import CONTENT_TYPE_LATEST, ReceiverMetrics
from ghlsync.server._responses import json_response


class AdminGate:
    """Checks `Authorization: Bearer <server.admin_token>` in constant time."""

    def __init__(self, token: Secret | None) -> None:
        # Compared as digests: equal lengths, so not even the token's length leaks.
        self._digest = None if token is None else _digest(token.reveal())

    def allows(self, request: Request) -> bool:
        """True when the detail may be shown to this request."""
        if self._digest is None:
            return True
        scheme, _, token = request.headers.get("authorization", "").strip().partition(" ")
        given = _digest(token.strip()) if scheme.lower() == "bearer" else b""
        return hmac.compare_digest(given, self._digest)


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


@dataclass(frozen=True, slots=True)
class Probes:
    """What the probes report on."""

    engine: sa.Engine
    clock: Clock
    worker_state: WorkerState | None
    metrics: ReceiverMetrics
    receiving_problem: Callable[[], str | None]
    gate: AdminGate

    def install(self, app: FastAPI) -> None:
        """Add `GET /healthz` and `GET /metrics` to `app`."""
        app.router.add_route("/healthz", self.healthz, methods=["GET"], include_in_schema=False)
        app.router.add_route("/metrics", self.prometheus, methods=["GET"], include_in_schema=False)

    async def healthz(self, request: Request) -> Response:
        """200 with the report when ok; 503 when degraded or unhealthy."""
        healthy, report = await asyncio.to_thread(
            health_report, self.engine, self.clock, self.worker_state, self.receiving_problem
        )
        status = 200 if healthy else 503
        if not self.gate.allows(request):
            return json_response(status, {"status": report["status"]})
        return json_response(status, report)

    async def prometheus(self, request: Request) -> Response:
        """The Prometheus text, or 401 without the admin token."""
        if not self.gate.allows(request):
            message = "send 'Authorization: Bearer <server.admin_token>' to read the metrics"
            response = json_response(401, {"error": "admin_token_required", "message": message})
            response.headers["www-authenticate"] = "Bearer"
            return response
        # In a thread: the per-location gauges read the store.
        text = await asyncio.to_thread(self.metrics.render)
        return Response(text, media_type=CONTENT_TYPE_LATEST)
