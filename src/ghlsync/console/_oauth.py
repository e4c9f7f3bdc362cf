"""Connect (or reconnect) GHL from the console: the OAuth flow through serve's own callback.

*Connect GHL* (a link for a signed-in session) sends the browser to GHL's consent page with a
fresh random `state`; GHL redirects back to `<public URL>/console/oauth/callback` with a code
and that `state`; the callback trades the code for tokens and stores them encrypted in the
vault, stamped with the running environment. The callback is not behind the sign-in (the
console cookie is SameSite=Strict, so a redirect from GHL's site does not carry it): the
one-time `state`, issued to a signed-in session minutes before, is what authorises it.
Connect is a link (GET), not a form: the console's CSP (`form-action 'self'`) rightly stops a
form from ending on GHL's site, and the SameSite=Strict cookie already keeps another site from
starting a consent in an admin's name (its link arrives signed out).

The marketplace app is the one `ghlsync auth login` uses: `GHLSYNC_GHL_CLIENT_ID` and
`GHLSYNC_GHL_CLIENT_SECRET`. GHL's consent page is `GHLSYNC_GHL_MARKETPLACE_URL`, else GHL's
own, else (a `ghl.base_url` that is not GHL's, e.g. a sandbox) `ghl.base_url`.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import threading
import time
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from ghlsync._secret import Secret
from ghlsync.console._app import Console, secured
from ghlsync.console._auth import Signed
from ghlsync.ghl._client import DEFAULT_BASE_URL
from ghlsync.ghl._errors import GHLError
from ghlsync.ghl._oauth import DEFAULT_MARKETPLACE_URL, OAuthApp, TokenSet

__all__ = ["CALLBACK_PATH", "Consents", "routes"]

CALLBACK_PATH = "/oauth/callback"
_TTL_SECONDS = 600.0  # a consent left open longer must be started again
_MAX_PENDING = 100
# Tags are read and written through the location's tag endpoints as well as the contacts'.
_EXTRA_SCOPES = ("locations/tags.readonly", "locations/tags.write")
_USER_TYPES = ("Location", "Company")


@dataclass(frozen=True, slots=True)
class _Pending:
    expires: float
    user_type: str
    redirect_uri: str


class Consents:
    """The `state`s handed out and not used yet (one process; each one usable once)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[str, _Pending] = {}

    def issue(self, user_type: str, redirect_uri: str) -> str:
        """A fresh state for one consent."""
        state = secrets.token_urlsafe(32)
        now = time.monotonic()
        with self._lock:
            self._pending = {k: p for k, p in self._pending.items() if p.expires > now}
            if len(self._pending) >= _MAX_PENDING:
                self._pending.pop(next(iter(self._pending)))
            self._pending[state] = _Pending(now + _TTL_SECONDS, user_type, redirect_uri)
        return state

    def take(self, state: str) -> _Pending | None:
        """The consent `state` belongs to, once; None when unknown, used or expired."""
        with self._lock:
            found = self._pending.pop(state, None)
        return found if found is not None and found.expires > time.monotonic() else None


_consents = Consents()


def routes(console: Console) -> list[Route]:
    """The Connect form (signed in) and GHL's redirect back (authorised by its state)."""

    async def callback(request: Request) -> Response:
        return await oauth_callback(console, request)

    return [
        Route("/oauth/connect", console.signed(connect), methods=["GET"]),
        Route(CALLBACK_PATH, callback, methods=["GET"]),
    ]


def oauth_app(console: Console, redirect_uri: str) -> OAuthApp | None:
    """The marketplace app from the environment, or None when it is not configured."""
    from ghlsync.preflight import required_scopes

    client_id = os.environ.get("GHLSYNC_GHL_CLIENT_ID")
    secret = os.environ.get("GHLSYNC_GHL_CLIENT_SECRET")
    if not client_id or not secret:
        return None
    base = console.config.ghl.base_url
    marketplace = os.environ.get("GHLSYNC_GHL_MARKETPLACE_URL") or (
        DEFAULT_MARKETPLACE_URL if base.rstrip("/") == DEFAULT_BASE_URL else base
    )
    scopes = [*required_scopes(console.config), *_EXTRA_SCOPES]
    return OAuthApp(
        client_id,
        Secret(secret),
        redirect_uri,
        scopes,
        base_url=base,
        marketplace_url=marketplace,
        api_version=console.config.ghl.api_version,  # v3: camelCase token calls
    )


async def connect(console: Console, request: Request, signed: Signed) -> Response:
    """Send the browser to GHL's consent page with a fresh state."""
    from ghlsync.console._pages import connections

    user_type = request.query_params.get("user_type") or "Location"
    if user_type not in _USER_TYPES:
        user_type = "Location"
    redirect_uri = console.public_url(request) + console.root(request) + CALLBACK_PATH
    app = oauth_app(console, redirect_uri)
    if app is None:
        return await connections(
            console,
            request,
            signed,
            error="Connecting through OAuth needs the marketplace app: set "
            "GHLSYNC_GHL_CLIENT_ID and GHLSYNC_GHL_CLIENT_SECRET for `ghlsync serve`, and add "
            f"{redirect_uri} to the app's redirect URLs (docs/console.md).",
        )
    state = _consents.issue(user_type, redirect_uri)
    return secured(RedirectResponse(app.authorize_url(state), status_code=303))


async def oauth_callback(console: Console, request: Request) -> Response:
    """GHL's redirect: check the state, trade the code, store the tokens."""
    params = request.query_params
    pending = _consents.take(params.get("state", ""))
    if pending is None:
        return _answer(console, request, 400, "Connection not completed", _STALE)
    if params.get("error") or not params.get("code"):
        reason = params.get("error_description") or params.get("error") or "no code came back"
        return _answer(console, request, 400, "Connection not completed", f"GHL said: {reason}.")
    app = oauth_app(console, pending.redirect_uri)
    if app is None:
        return _answer(console, request, 503, "Connection not completed", _NO_APP)
    try:
        tokens = await app.exchange_code(str(params["code"]), pending.user_type)
        await asyncio.to_thread(_store, console, app, tokens)
    except GHLError as exc:
        return _answer(console, request, 502, "Connection not completed", f"GHL refused: {exc}")
    what = f"{tokens.user_type} {tokens.key}"
    return _answer(
        console,
        request,
        200,
        "GHL connected",
        f"Connected {what} (scopes: {tokens.scope or '-'}). Its tokens are stored encrypted "
        "and refreshed before they expire.",
        connected=tokens.key,
    )


def _store(console: Console, app: OAuthApp, tokens: TokenSet) -> None:
    """Save the tokens; a location is also registered (its DripJobs webhook URLs and secret
    appear on Connections, as after an install), and all of it stamped with the environment."""
    from ghlsync.engine.locations._environment import claim_environment
    from ghlsync.engine.locations._rows import register_location
    from ghlsync.ghl._vault import TokenVault

    cipher = console.locations.cipher
    TokenVault(console.engine, cipher, app).save(tokens.key, tokens)
    if tokens.user_type == "Location":
        now = console.clock.now()
        register_location(console.engine, cipher, tokens.key, now=now, company_id=tokens.company_id)
    claim_environment(console.engine, tokens.key, console.config.environment)
    console.locations.invalidate(tokens.key)


_STALE = (
    "This link has expired or was already used. Start again from Connections > Connect GHL "
    "(a consent must come back within 10 minutes, to the server that started it)."
)
_NO_APP = "The marketplace app is no longer configured (GHLSYNC_GHL_CLIENT_ID / _SECRET)."


def _answer(
    console: Console,
    request: Request,
    status: int,
    title: str,
    message: str,
    connected: str | None = None,
) -> Response:
    return console.page(
        request,
        "oauth_done.html",
        None,
        status=status,
        title=title,
        message=message,
        connected=connected,
    )
