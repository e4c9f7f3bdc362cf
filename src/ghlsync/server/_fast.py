"""The app class: DripJobs deliveries go straight to the receiver, everything else to FastAPI.

A delivery is the one request a busy server answers thousands of times a second. Through
FastAPI it passes seven ASGI layers before its handler (server-error, telemetry, body-limit and
exception middleware, the router, an exit stack, the route), each wrapping `send`; together
they cost about as much CPU as the receiver itself. `GhlsyncApp` takes
`POST /hooks/dripjobs/<event>` and `POST /hooks/dripjobs/<connection>/<event>` before all of
that and hands them to the receiver, answering an unexpected failure with the same JSON 500
the app's error handler gives. Any other request (other methods, a trailing slash, other
paths) goes through FastAPI unchanged, so its 404/405/redirect answers stay the same.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from ghlsync.server._responses import json_response

__all__ = ["GhlsyncApp"]

_log = logging.getLogger("ghlsync.server")
PREFIX = "/hooks/dripjobs/"
Handler = Callable[[Request], Awaitable[Response]]


class GhlsyncApp(FastAPI):
    """FastAPI, with the DripJobs webhook route served without the middleware stack."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deliveries: Handler | None = None

    def serve_deliveries(self, handler: Handler) -> None:
        """Answer `POST /hooks/dripjobs/...` with `handler` (`DripJobsReceiver.handle`)."""
        self._deliveries = handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = self._deliveries
        if handler is not None and scope["type"] == "http" and scope["method"] == "POST":
            params = _delivery_params(scope["path"])
            if params is not None:
                scope["app"] = self
                scope["path_params"] = params
                await _answer(handler, scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def _delivery_params(path: str) -> dict[str, str] | None:
    """The route's path parameters, as Starlette would match them, or None."""
    if not path.startswith(PREFIX):
        return None
    parts = path[len(PREFIX) :].split("/")
    if len(parts) == 1 and parts[0]:
        return {"event": parts[0]}
    if len(parts) == 2 and parts[0] and parts[1]:
        return {"connection": parts[0], "event": parts[1]}
    return None


async def _answer(handler: Handler, scope: Scope, receive: Receive, send: Send) -> None:
    try:
        response = await handler(Request(scope, receive))
    except Exception:
        _log.exception("the DripJobs receiver failed on a request")
        message = "the server failed on this request; retry later"
        response = json_response(500, {"error": "internal_error", "message": message})
    await response(scope, receive, send)
