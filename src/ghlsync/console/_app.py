"""The console's Starlette app, mounted by the server at `/console`.

Pages are server-rendered; forms post back and answer with a page (or a 303 to one). Every
form carries the CSRF token; every answer forbids framing and caching and allows scripts and
styles from `/console/static` only.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ghlsync._clock import Clock
from ghlsync.console._auth import Gate, NoPassword, NotSignedIn, Signed
from ghlsync.console._render import environment
from ghlsync.console._session import LoginLimiter
from ghlsync.engine.locations._directory import LocationDirectory
from ghlsync.mapping import AppConfig

__all__ = ["Console", "build_console"]

_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}

Handler = Callable[["Console", Request, Signed], Awaitable[Response]]


@dataclass
class Console:
    """What every console route needs."""

    engine: sa.Engine
    config: AppConfig
    locations: LocationDirectory
    clock: Clock
    gate: Gate
    templates: Any = field(default_factory=environment)

    def page(
        self, request: Request, name: str, signed: Signed | None, status: int = 200, **values: Any
    ) -> HTMLResponse:
        """Render `name` with the values every page needs."""
        html = self.templates.get_template(name).render(
            request=request,
            csrf=signed.session.csrf if signed else "",
            signed_in=signed is not None,
            now=self.clock.now(),
            root=self.root(request),
            **values,
        )
        response = HTMLResponse(html, status_code=status)
        secured(response)
        return response

    @staticmethod
    def root(request: Request) -> str:
        """The console's URL prefix (`/console`, or wherever it is mounted)."""
        return str(request.scope.get("root_path", "")).rstrip("/")

    def public_url(self, request: Request) -> str:
        """Where DripJobs reaches this server: GHLSYNC_PUBLIC_URL, else the request's base."""
        configured = os.environ.get("GHLSYNC_PUBLIC_URL")
        if configured:
            return configured.rstrip("/")
        base = str(request.base_url).rstrip("/")
        root = self.root(request)
        return base[: -len(root)] if root and base.endswith(root) else base

    def signed(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        """Wrap a handler: the setup page without a password, the sign-in page without a
        session, and the CSRF check on every POST."""

        async def endpoint(request: Request) -> Response:
            try:
                signed = await self.gate.check(request)
            except NoPassword:
                return self.no_password(request)
            except NotSignedIn:
                return secured(RedirectResponse(f"{self.root(request)}/login", status_code=303))
            if request.method == "POST":
                form = await request.form()
                from ghlsync.console._session import check_csrf

                if not check_csrf(signed.session.csrf, form.get("csrf")):
                    return self.csrf_refused(request, signed)
            return await handler(self, request, signed)

        return endpoint

    def no_password(self, request: Request) -> HTMLResponse:
        """The only page while no password is set."""
        return self.page(request, "setup.html", None, status=503)

    def csrf_refused(self, request: Request, signed: Signed | None) -> HTMLResponse:
        """403: the form's token is missing or wrong (a stale page, or another site)."""
        return self.page(
            request,
            "message.html",
            signed,
            status=403,
            title="Form expired",
            message="This form was not sent from the console page (or the page is stale). "
            "Reload the page and try again.",
        )


def secured(response: Response) -> Response:
    """Add the security headers to an answer."""
    response.headers.update(_HEADERS)
    return response


def build_console(
    engine: sa.Engine, config: AppConfig, locations: LocationDirectory, clock: Clock
) -> Starlette:
    """The console app over one store."""
    from ghlsync.console import _actions, _login, _oauth, _pages

    console = Console(engine, config, locations, clock, Gate(engine, clock, LoginLimiter()))
    routes = [
        Mount("/static", app=StaticFiles(packages=[("ghlsync.console", "static")]), name="static"),
        *_login.routes(console),
        *_pages.routes(console),
        *_actions.routes(console),
        *_oauth.routes(console),
    ]

    async def fallback(request: Request) -> Response:
        return await console.signed(_pages.not_found)(request)

    routes.append(Route("/{rest:path}", fallback, methods=["GET", "POST"]))
    return Starlette(routes=routes)
