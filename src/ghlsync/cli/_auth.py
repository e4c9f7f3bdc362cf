"""`ghlsync auth login|status|rotate-key|new-key`: connect GHL and look after stored tokens.

`login` runs the OAuth authorization-code flow on this machine: it serves a one-shot
callback on loopback, opens (and prints) GHL's consent page with a random `state`, checks the
`state` that comes back, exchanges the code and stores the tokens encrypted. Tokens are never
printed.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
import time
import webbrowser
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ParamSpec, TypeVar
from urllib.parse import parse_qs, urlsplit

import sqlalchemy as sa
import typer

from ghlsync._secret import Secret
from ghlsync.cli._engine_common import (
    CONFIG_OPTION,
    cipher_or_fail,
    load_config_or_fail,
    open_store,
)
from ghlsync.cli._tables import Column, FitTable, print_table
from ghlsync.ghl._crypto import SecretKeyError, generate_key
from ghlsync.ghl._errors import GHLError
from ghlsync.ghl._oauth import DEFAULT_MARKETPLACE_URL, OAuthApp, TokenSet
from ghlsync.ghl._vault import ConnectionStatus, TokenVault, stored_connections

DEFAULT_SCOPES = (
    "contacts.readonly contacts.write calendars.readonly calendars/events.readonly "
    "calendars/events.write locations.readonly locations/customFields.readonly "
    "locations/tags.readonly locations/tags.write users.readonly"
)
CALLBACK_PATH = "/callback"

P = ParamSpec("P")
T = TypeVar("T")

auth_app = typer.Typer(help="Connect GoHighLevel and manage the stored (encrypted) tokens.")


def register(app: typer.Typer) -> None:
    """Add this area's commands to `app`."""
    app.add_typer(auth_app, name="auth")


_DB_OPTION = typer.Option(
    None,
    "--database-url",
    help="Store URL (default: database_url of the config, as `serve` uses it).",
)


@auth_app.command("login")
def login(
    client_id: str = typer.Option(..., envvar="GHLSYNC_GHL_CLIENT_ID", help="OAuth client id."),
    client_secret: str = typer.Option(
        ..., envvar="GHLSYNC_GHL_CLIENT_SECRET", help="OAuth client secret.", show_default=False
    ),
    redirect_port: int = typer.Option(
        8787, min=0, max=65535, help="Loopback port for the callback (0 picks a free one)."
    ),
    scopes: str = typer.Option(DEFAULT_SCOPES, help="Space-separated scopes to request."),
    base_url: str = typer.Option(
        "", "--base-url", help="GHL API base URL (default: ghl.base_url of the config)."
    ),
    marketplace_url: str = typer.Option(DEFAULT_MARKETPLACE_URL),
    user_type: str = typer.Option("Location", help="Token to request: Location or Company."),
    database_url: str | None = _DB_OPTION,
    config: Path | None = CONFIG_OPTION,
    open_browser: bool = typer.Option(True, "--browser/--no-browser", help="Open the page."),
    timeout: float = typer.Option(300.0, help="Seconds to wait for the consent."),
) -> None:
    """Connect a GHL location (or agency) through OAuth and store its tokens encrypted."""
    ghl = load_config_or_fail("auth login", config).ghl
    callback = _fail_on_error(_CallbackServer, redirect_port)
    oauth = OAuthApp(
        client_id,
        Secret(client_secret),
        callback.redirect_uri,
        scopes.split(),
        base_url=base_url or ghl.base_url,
        marketplace_url=marketplace_url,
        api_version=ghl.api_version,  # v3: camelCase token calls (docs/api-versions.md)
    )
    with _open_vault("auth login", config, database_url, oauth) as vault:
        key = _login_flow(oauth, vault, callback, open_browser, timeout, user_type)
    _claim(key, config, database_url)


def _login_flow(
    oauth: OAuthApp,
    vault: TokenVault,
    callback: _CallbackServer,
    open_browser: bool,
    timeout: float,
    user_type: str,
) -> str:
    state = secrets.token_urlsafe(24)
    url = oauth.authorize_url(state)
    typer.echo(f"Open this page to connect GoHighLevel:\n  {url}", err=True)
    typer.echo(f"Waiting for GHL to redirect to {callback.redirect_uri} ...", err=True)
    if open_browser:
        webbrowser.open(url)
    code = _fail_on_error(callback.wait_for_code, state, timeout)
    tokens: TokenSet = _fail_on_error(asyncio.run, oauth.exchange_code(code, user_type))
    vault.save(tokens.key, tokens)
    typer.echo(f"Connected {tokens.user_type} {tokens.key} (scopes: {tokens.scope or '-'}).")
    return tokens.key


def _claim(key: str, config: Path | None, database_url: str | None) -> None:
    """Record the running environment on the stored token (docs/environments.md)."""
    from ghlsync.engine.locations._environment import claim_environment
    from ghlsync.mapping import ConfigError, load_config

    try:
        environment = load_config(config).environment
    except ConfigError:
        return  # --base-url and --database-url were enough: no config, no environment
    with open_store("auth login", _store_url("auth login", config, database_url)) as engine:
        claim_environment(engine, key, environment)


@auth_app.command("status")
def status(database_url: str | None = _DB_OPTION, config: Path | None = CONFIG_OPTION) -> None:
    """List stored GHL connections: key, type, status, expiry, scopes (never the tokens)."""
    url = _store_url("auth status", config, database_url)
    with open_store("auth status", url, write=False) as engine:
        rows = _fail_on_error(stored_connections, engine)
    if not rows:
        typer.echo("No GHL connections stored; run `ghlsync auth login`.")
        return
    print_table(_status_table(rows, time.time()))


@auth_app.command("rotate-key")
def rotate_key(database_url: str | None = _DB_OPTION, config: Path | None = CONFIG_OPTION) -> None:
    """Re-encrypt every stored secret (GHL tokens, DripJobs webhook secrets) under the first
    key of GHLSYNC_SECRET_KEY, in one transaction."""
    url = _store_url("auth rotate-key", config, database_url)
    cipher = cipher_or_fail("auth rotate-key")
    with open_store("auth rotate-key", url) as engine:
        changed = _fail_on_error(cipher.rotate, engine)
    typer.echo(
        f"Re-encrypted {changed} stored secret(s) (GHL tokens, DripJobs webhook secrets) "
        f"under key {cipher.key_id}; the old key can now be dropped."
    )


@auth_app.command("new-key")
def new_key() -> None:
    """Print a fresh encryption key (put it first in GHLSYNC_SECRET_KEY to rotate)."""
    typer.echo(generate_key())


def _status_table(rows: list[ConnectionStatus], now: float) -> FitTable:
    columns = [Column("key", flex=True), Column("type"), Column("status", flex=True)]
    columns += [Column("expires in"), Column("scopes", flex=True)]
    table = FitTable("GHL connections", columns)
    for row in rows:
        state = row.status if not row.status_message else f"{row.status}: {row.status_message}"
        kind = f"{row.user_type} ({row.kind})"
        table.add_row(row.key, kind, state, _expires(row.expires_in(now)), row.scopes or "-")
    return table


def _expires(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    if seconds <= 0:
        return "expired"
    hours, rest = divmod(int(seconds), 3600)
    return f"{hours}h {rest // 60:02d}m"


def _store_url(command: str, config: Path | None, database_url: str | None) -> str:
    """`--database-url` when given, else the config's (the store `serve` uses)."""
    return database_url or load_config_or_fail(command, config).database_url


@contextmanager
def _open_vault(
    command: str, config: Path | None, database_url: str | None, oauth: OAuthApp | None
) -> Iterator[TokenVault]:
    url = _store_url(command, config, database_url)
    cipher = cipher_or_fail(command)
    with open_store(command, url) as engine:
        yield TokenVault(engine, cipher, oauth)


def _fail_on_error(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    try:
        return fn(*args, **kwargs)
    except (GHLError, SecretKeyError, LoginError, sa.exc.SQLAlchemyError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


class LoginError(Exception):
    """The consent did not come back usable (denied, wrong state, timeout)."""


@dataclass
class _Outcome:
    expected_state: str = ""
    params: dict[str, str] = field(default_factory=dict)
    strays: int = 0

    def offer(self, params: dict[str, str]) -> bool:
        """Keep `params` when they carry this login's state; False for a stray request."""
        if not self.expected_state or not hmac.compare_digest(
            params.get("state", ""), self.expected_state
        ):
            self.strays += 1
            return False
        self.params = params
        return True


_DONE_PAGE = b"<h1>ghlsync</h1><p>Done. You can close this tab.</p>"
_STRAY_PAGE = (
    b"<h1>ghlsync</h1><p>This is not the answer the running `ghlsync auth login` waits for "
    b"(its state does not match); it was ignored.</p>"
)


class _CallbackServer:
    """A loopback HTTP server that waits for GHL's redirect carrying this login's `state`.

    Requests without that state (a stale tab, a scanner, a forged link) are answered 400 and
    ignored: only the redirect that belongs to this login ends the wait.
    """

    def __init__(self, port: int) -> None:
        self.outcome = _Outcome()
        outcome = self.outcome

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                if parts.path != CALLBACK_PATH:
                    self.send_error(404)
                    return
                params = {k: v[0] for k, v in parse_qs(parts.query).items()}
                ours = outcome.offer(params)
                self._answer(200 if ours else 400, _DONE_PAGE if ours else _STRAY_PAGE)

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass  # the query string holds the code: keep it out of the terminal

        try:
            self._server = HTTPServer(("127.0.0.1", port), Handler)
        except OSError as exc:
            raise LoginError(
                f"cannot listen on 127.0.0.1:{port} for GHL's redirect ({exc.strerror}); "
                "stop what uses it or pass --redirect-port (it must match the app's "
                "redirect URI)"
            ) from None
        self.redirect_uri = f"http://127.0.0.1:{self._server.server_port}{CALLBACK_PATH}"

    def wait_for_code(self, state: str, timeout: float) -> str:
        """Serve until the redirect with `state` arrives; return its code."""
        self.outcome.expected_state = state
        deadline = time.monotonic() + timeout
        try:
            while not self.outcome.params:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise LoginError(self._timeout_message(timeout))
                self._server.timeout = remaining
                self._server.handle_request()
        finally:
            self._server.server_close()
        return _code_from(self.outcome.params)

    def _timeout_message(self, timeout: float) -> str:
        ignored = self.outcome.strays
        extra = f" ({ignored} request(s) with another state were ignored)" if ignored else ""
        return (
            f"no answer from GHL for this login within {timeout:.0f} s{extra}; "
            "run `ghlsync auth login` again and finish the consent page it prints"
        )


def _code_from(params: dict[str, str]) -> str:
    if "error" in params:
        raise LoginError(
            f"GHL refused the connection ({params['error']}); run `ghlsync auth login` again "
            "and approve the consent page"
        )
    if not params.get("code"):
        raise LoginError("GHL redirected back without a code; run `ghlsync auth login` again")
    return params["code"]
