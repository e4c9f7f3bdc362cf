"""The sandbox app factory."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import PlainTextResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ghlsync.sandbox import (
    _routes_admin,
    _routes_calendars,
    _routes_children,
    _routes_contacts,
    _routes_conversations,
    _routes_install,
    _routes_links,
    _routes_locations,
    _routes_oauth,
    _routes_opportunities,
    _routes_pipelines,
)
from ghlsync.sandbox._errors import (
    SandboxError,
    handle_http_error,
    handle_sandbox_error,
    handle_validation_error,
)
from ghlsync.sandbox._gate import Gate, quiet_reset_faults
from ghlsync.sandbox._ratelimit import SlidingWindowLimiter
from ghlsync.sandbox._state import SandboxState
from ghlsync.sandbox._webhooks import WebhookDispatcher
from ghlsync.sandbox.dripjobs import DripJobsState, mount_dripjobs


def create_app(
    state: SandboxState | None = None,
    *,
    burst: int = 100,
    interval_ms: int = 10_000,
    daily: int = 200_000,
    dripjobs: DripJobsState | None = None,
) -> FastAPI:
    """A GHL API v2 emulator over `state` (a fresh start state when None).

    With `dripjobs`, the DripJobs emulator answers `/dripjobs/*` in front of it.
    """
    state = state or SandboxState(burst=burst, interval_ms=interval_ms, daily=daily)
    app = FastAPI(title="ghlsync GHL sandbox", version="2")
    app.state.sandbox = state
    limiter = SlidingWindowLimiter(state.clock)
    state.reset_hooks.append(limiter.reset)
    dispatcher = WebhookDispatcher(state)
    app.state.webhooks = dispatcher
    app.add_exception_handler(SandboxError, handle_sandbox_error)
    app.add_exception_handler(RequestValidationError, handle_validation_error)
    app.add_exception_handler(StarletteHTTPException, handle_http_error)
    for module in (
        _routes_links,
        _routes_contacts,
        _routes_children,
        _routes_calendars,
        _routes_locations,
        _routes_oauth,
        _routes_admin,
        _routes_install,
        _routes_pipelines,  # before _routes_opportunities: /opportunities/search is no {id}
        _routes_opportunities,
        _routes_conversations,
    ):
        app.include_router(module.router)

    @app.get("/_sandbox/webhook-public-key", response_class=PlainTextResponse)
    async def webhook_public_key() -> str:
        """The Ed25519 key that verifies `x-ghl-signature` (SPKI PEM)."""
        return dispatcher.public_key_pem()

    app.add_middleware(Gate, state=state, limiter=limiter)
    if dripjobs is not None:
        mount_dripjobs(app, dripjobs)  # added last = outermost: the gate never sees it
    quiet_reset_faults()
    return app
