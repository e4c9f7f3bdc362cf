"""Sign-in and sign-out.

Failed attempts are counted per client address (`LoginLimiter`): past the limit the form
answers 429 with `Retry-After`, without even checking the password.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from ghlsync.console._app import Console, secured
from ghlsync.console._auth import NoPassword
from ghlsync.console._session import (
    LOGIN_COOKIE,
    SESSION_COOKIE,
    SESSION_SECONDS,
    clear_session,
    issue_session,
    login_token,
    set_cookie,
)

__all__ = ["routes"]

_LOGIN_COOKIE_SECONDS = 3600


def routes(console: Console) -> list[Route]:
    """`GET/POST /login`, `POST /logout`."""

    async def login_page(request: Request) -> Response:
        return await show_login(console, request)

    async def login_post(request: Request) -> Response:
        return await sign_in(console, request)

    async def logout(request: Request) -> Response:
        return await console.signed(_sign_out)(request)

    return [
        Route("/login", login_page, methods=["GET"]),
        Route("/login", login_post, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
    ]


async def show_login(
    console: Console, request: Request, *, status: int = 200, error: str | None = None
) -> Response:
    """The sign-in form, with a CSRF token bound to a sign-in cookie."""
    try:
        admin = await console.gate.admin()
    except NoPassword:
        return console.no_password(request)
    nonce, new = console.gate.login_nonce(request)
    response = console.page(
        request,
        "login.html",
        None,
        status=status,
        login_csrf=login_token(admin.session_key, nonce),
        error=error,
    )
    if new:
        set_cookie(response, request, LOGIN_COOKIE, nonce, _LOGIN_COOKIE_SECONDS)
    return response


async def sign_in(console: Console, request: Request) -> Response:
    """Check the rate limit, the form's token, then the password; set the session cookie."""
    try:
        admin = await console.gate.admin()
    except NoPassword:
        return console.no_password(request)
    client = request.client.host if request.client else "unknown"
    now = console.clock.now()
    wait = console.gate.limiter.retry_after(client, now)
    if wait:
        response = await show_login(
            console,
            request,
            status=429,
            error=f"Too many failed attempts. Try again in {wait} seconds.",
        )
        response.headers["retry-after"] = str(wait)
        return response
    form = await request.form()
    if not console.gate.login_form_ok(admin, request, form.get("csrf")):
        return console.csrf_refused(request, None)
    password = form.get("password")
    if not isinstance(password, str) or not await console.gate.password_ok(admin, password):
        console.gate.limiter.failed(client, now)
        return await show_login(console, request, status=401, error="Wrong password.")
    console.gate.limiter.succeeded(client)
    cookie, _session = issue_session(admin.session_key, now)
    response = secured(RedirectResponse(f"{console.root(request)}/", status_code=303))
    set_cookie(response, request, SESSION_COOKIE, cookie, SESSION_SECONDS)
    return response


async def _sign_out(console: Console, request: Request, _signed: object) -> Response:
    response = secured(RedirectResponse(f"{console.root(request)}/login", status_code=303))
    clear_session(response)
    return response
