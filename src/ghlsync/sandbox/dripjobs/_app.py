"""The emulator's app, served alone or in front of the GHL sandbox under `/dripjobs/`."""

from __future__ import annotations

import httpx2
from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from ghlsync.sandbox.dripjobs import _routes_admin, _routes_catch
from ghlsync.sandbox.dripjobs._firing import TriggerFirer
from ghlsync.sandbox.dripjobs._state import DripJobsState

PREFIX = "/dripjobs"


def create_dripjobs_app(
    state: DripJobsState | None = None, *, transport: httpx2.AsyncBaseTransport | None = None
) -> FastAPI:
    """A DripJobs emulator over `state`; `transport` carries its triggers (default: HTTP)."""
    app = FastAPI(title="ghlsync DripJobs emulator")
    app.state.dripjobs = state or DripJobsState()
    app.state.dripjobs_firer = TriggerFirer(app.state.dripjobs, transport)
    app.include_router(_routes_catch.router)
    app.include_router(_routes_admin.router)
    return app


class DripJobsMount:
    """ASGI middleware sending `/dripjobs/*` to the emulator, past the GHL sandbox's gate."""

    def __init__(self, app: ASGIApp, dripjobs: ASGIApp) -> None:
        self.app = app
        self.dripjobs = dripjobs

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] == "http" and (path == PREFIX or path.startswith(PREFIX + "/")):
            await self.dripjobs(scope, receive, send)
            return
        await self.app(scope, receive, send)


def mount_dripjobs(app: FastAPI, state: DripJobsState) -> FastAPI:
    """Put the emulator in front of `app` (the GHL sandbox); returns the emulator's app."""
    emulator = create_dripjobs_app(state)
    app.add_middleware(DripJobsMount, dripjobs=emulator)
    app.state.dripjobs = state
    app.state.dripjobs_app = emulator
    return emulator
