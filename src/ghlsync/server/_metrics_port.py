"""`ghlsync worker --metrics-port`: the worker process's own counters on `GET /metrics`.

A worker started apart from `serve` counts its GHL calls, sync outcomes and write-backs in its
own process; this small endpoint lets Prometheus scrape them. Only the sync metrics
(`ghlsync._metrics`): the per-location gauges come from `serve`'s `/metrics`, which reads the
store every worker shares. Behind `server.admin_token` like `serve`'s. Served by uvicorn in a
thread, so the worker's event loop and its signal handling stay as they are.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from prometheus_client import generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ghlsync._metrics import SYNC_METRICS
from ghlsync._secret import Secret
from ghlsync.server._metrics import CONTENT_TYPE_LATEST
from ghlsync.server._probes import AdminGate
from ghlsync.server._responses import json_response
from ghlsync.server._thread import bind_loopback

__all__ = ["metrics_endpoint"]


def _app(gate: AdminGate) -> Starlette:
    async def metrics(request: Request) -> Response:
        if not gate.allows(request):
            message = "send 'Authorization: Bearer <server.admin_token>' to read the metrics"
            response = json_response(401, {"error": "admin_token_required", "message": message})
            response.headers["www-authenticate"] = "Bearer"
            return response
        return Response(generate_latest(SYNC_METRICS.registry), media_type=CONTENT_TYPE_LATEST)

    return Starlette(routes=[Route("/metrics", metrics, methods=["GET"])])


@contextmanager
def metrics_endpoint(host: str, port: int, admin_token: Secret | None) -> Iterator[str]:
    """Serve `/metrics` on `host:port` (0: a free port) while inside; yields its URL."""
    sock = bind_loopback(host, port)
    config = uvicorn.Config(
        _app(AdminGate(admin_token)), log_config=None, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="ghlsync-metrics", daemon=True
    )
    thread.start()
    try:
        yield f"http://{host}:{sock.getsockname()[1]}/metrics"
    finally:
        server.should_exit = True
        thread.join(timeout=5)
        sock.close()
