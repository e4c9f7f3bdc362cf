"""`ghlsync locations list|add|show|remove|rotate-secret`: the locations ghlsync syncs.

Each location has its own DripJobs connection: a webhook URL with an unguessable id and its
own secret, printed once by `add` and `rotate-secret` (then shown masked). See
`docs/locations.md`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import typer
from rich.console import Console
from rich.table import Table

from ghlsync.cli._engine_common import (
    CONFIG_OPTION,
    JSON_OPTION,
    cipher_or_fail,
    fail,
    load_config_or_fail,
    open_store,
)
from ghlsync.ghl._crypto import SecretKeyError

__all__ = ["locations_app", "register"]

locations_app = typer.Typer(
    help="Locations (GHL sub-accounts) and their DripJobs webhook URLs and secrets.",
    no_args_is_help=True,
)

_URL_OPTION = typer.Option(
    "https://<your ghlsync server>",
    "--public-url",
    envvar="GHLSYNC_PUBLIC_URL",
    help="Public base URL of `ghlsync serve`, for the webhook URL printed.",
)

_MAPPING_OPTION = typer.Option(
    None, "--mapping", help="YAML mapping override, merged over the base config."
)


def register(app: typer.Typer) -> None:
    """Add this area's commands to `app`."""
    app.add_typer(locations_app, name="locations")


@dataclass
class _Ctx:
    """What every subcommand needs: the config, the store, the cipher, the directory."""

    config: Any
    engine: sa.Engine
    cipher: Any  # None for commands that must work without the key (list, show)

    def vault(self) -> Any:
        from ghlsync.engine.locations._services import oauth_from_env
        from ghlsync.ghl._vault import TokenVault

        return TokenVault(self.engine, self.cipher, oauth_from_env(self.config))


@contextmanager
def _open(
    command: str, config: Path | None, *, key: bool = True, write: bool = True
) -> Iterator[_Ctx]:
    """The context; `key=False` needs no encryption key, `write=False` never creates the store."""
    loaded = load_config_or_fail(command, config)
    cipher = cipher_or_fail(command) if key else None
    with open_store(command, loaded.database_url, write=write) as engine:
        try:
            if cipher is not None:
                cipher.check(engine)  # a wrong key: say which one the store needs, up front
            yield _Ctx(loaded, engine, cipher)
        except SecretKeyError as exc:
            raise fail(command, str(exc)) from None


# -------------------------------------------------------------------------------- add


@locations_app.command("add")
def add(
    location_id: str = typer.Argument(..., help="The GHL location (sub-account) id."),
    token: str | None = typer.Option(
        None, "--token", help="A Private Integration token for this location (stored encrypted)."
    ),
    from_company: str | None = typer.Option(
        None, "--from-company", help="Mint the location's token from this agency's connection."
    ),
    calendar: str | None = typer.Option(None, "--calendar", help="Calendar for appointments."),
    mapping: Path | None = _MAPPING_OPTION,
    name: str | None = typer.Option(None, "--name", help="A name to recognise it by."),
    public_url: str = _URL_OPTION,
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Add a location and print its DripJobs webhook URL and secret (shown once)."""
    if token and from_company:
        raise fail("locations add", "give --token or --from-company, not both")
    with _open("locations add", config) as ctx:
        override = _read_override(ctx, mapping)
        _store_token(ctx, location_id, token, from_company)
        done = _install(ctx, location_id, from_company, name)
        _set_options(ctx, location_id, calendar, override)
    _print_added(location_id, done, public_url)


def _read_override(ctx: _Ctx, mapping: Path | None) -> str | None:
    from ghlsync.engine.locations._override import check_override
    from ghlsync.mapping import ConfigError

    if mapping is None:
        return None
    try:
        text = mapping.read_text("utf-8")
        check_override(ctx.config, text, str(mapping))
    except OSError as exc:
        raise fail("locations add", f"{mapping}: cannot be read ({exc.strerror})") from None
    except ConfigError as exc:
        raise fail("locations add", str(exc)) from None
    return text


def _store_token(ctx: _Ctx, location_id: str, token: str | None, company: str | None) -> None:
    from ghlsync._secret import Secret
    from ghlsync.engine.locations._services import oauth_from_env

    vault = ctx.vault()
    if token:
        vault.save_private(location_id, Secret(token))
        return
    if company is None:
        return
    if oauth_from_env(ctx.config) is None:  # first: `auth login` would need it too
        raise fail(
            "locations add",
            "minting a location token from an agency connection needs the marketplace app's "
            "OAuth client: set GHLSYNC_GHL_CLIENT_ID and GHLSYNC_GHL_CLIENT_SECRET, or give the "
            "location a Private Integration token with --token",
        )
    if vault.status(company) is None:
        raise fail(
            "locations add",
            f"no agency connection for company {company}: run "
            "`ghlsync auth login --user-type Company` first",
        )


def _install(ctx: _Ctx, location_id: str, company: str | None, name: str | None) -> Any:
    from ghlsync.engine.locations._directory import LocationDirectory
    from ghlsync.engine.locations._install import Installer
    from ghlsync.engine.locations._services import oauth_from_env
    from ghlsync.ghl._errors import GHLError

    directory = LocationDirectory(ctx.engine, ctx.config, ctx.cipher)
    installer = Installer(ctx.engine, directory, ctx.vault(), oauth_from_env(ctx.config))
    try:
        return asyncio.run(installer.install_location(location_id, company, name))
    except GHLError as exc:
        raise fail("locations add", f"GHL refused the location token: {exc}") from None


def _set_options(ctx: _Ctx, location_id: str, calendar: str | None, override: str | None) -> None:
    import time

    from ghlsync.engine.locations._rows import set_location_options

    values: dict[str, str | None] = {}
    if calendar is not None:
        values["calendar_id"] = calendar
    if override is not None:
        values["mapping_override"] = override
    if values:
        set_location_options(ctx.engine, location_id, now=time.time(), **values)


def _print_added(location_id: str, done: Any, public_url: str) -> None:
    url = _url(public_url, done.connection_id)
    typer.echo(f"Location {location_id} is active (GHL token: {done.token}).")
    typer.echo(f"DripJobs webhook URL: {url}")
    if done.new_secret is None:
        typer.echo(
            "Its connection already existed: its secret is not shown again "
            f"(`ghlsync locations rotate-secret {location_id}` makes a new one)."
        )
        return
    typer.echo(f"Webhook secret (shown once): {done.new_secret.reveal()}")
    typer.echo("In each Zap, send the header `Authorization: Bearer <secret>`.")


def _url(public_url: str, connection_id: str, event: str = "<event>") -> str:
    from ghlsync.engine.locations._install import webhook_path

    return public_url.rstrip("/") + webhook_path(connection_id, event)


# ------------------------------------------------------------------------ list / show


@locations_app.command("list")
def list_(config: Path | None = CONFIG_OPTION, as_json: bool = JSON_OPTION) -> None:
    """Every location: status, company, calendar, override, live connections, token."""
    with _open("locations list", config, key=False, write=False) as ctx:
        rows = [_describe(ctx, row) for row in _rows(ctx)]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        typer.echo("No locations stored; add one with `ghlsync locations add LOCATION_ID`.")
        return
    Console(width=160).print(_table(rows))


def _rows(ctx: _Ctx) -> list[Any]:
    from ghlsync.engine.locations._rows import list_locations

    return list_locations(ctx.engine)


def _describe(ctx: _Ctx, row: Any, reveal: bool = False) -> dict[str, Any]:
    from ghlsync.engine.locations._rows import list_connections
    from ghlsync.ghl._vault import stored_status

    # No key needed: secrets stay sealed unless --reveal gave `ctx` a cipher.
    connections = list_connections(ctx.engine, ctx.cipher, row.location_id)
    token = stored_status(ctx.engine, row.location_id)
    return {
        "location_id": row.location_id,
        "name": row.name,
        "status": row.status,
        "company_id": row.company_id,
        "calendar_id": row.calendar_id,
        "mapping_override": row.mapping_override,
        "installed_at": row.installed_at,
        "uninstalled_at": row.uninstalled_at,
        "token": token.status if token is not None else "none",
        "connections": [_connection(c, reveal) for c in connections],
    }


def _connection(connection: Any, reveal: bool) -> dict[str, Any]:
    secret = connection.secret
    return {
        "connection_id": connection.connection_id,
        "path": f"/hooks/dripjobs/{connection.connection_id}/<event>",
        "secret": secret.reveal() if reveal else str(secret),
        "created_at": connection.created_at,
        "revoked_at": connection.revoked_at,
    }


def _table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="Locations")
    for column in ("location", "name", "status", "company", "calendar", "override", "token"):
        table.add_column(column)
    table.add_column("live connections", justify="right")
    for row in rows:
        live = [c for c in row["connections"] if c["revoked_at"] is None]
        table.add_row(
            row["location_id"],
            row["name"] or "",
            row["status"],
            row["company_id"] or "",
            row["calendar_id"] or "",
            "yes" if row["mapping_override"] else "",
            row["token"],
            str(len(live)),
        )
    return table


@locations_app.command("show")
def show(
    location_id: str = typer.Argument(..., help="The GHL location id."),
    reveal: bool = typer.Option(False, "--reveal", help="Print the secrets in clear."),
    public_url: str = _URL_OPTION,
    config: Path | None = CONFIG_OPTION,
) -> None:
    """One location: its connections (URLs, secrets masked), token and mapping override."""
    from ghlsync.engine.locations._rows import get_location

    with _open("locations show", config, key=reveal, write=False) as ctx:
        row = get_location(ctx.engine, location_id)
        if row is None:
            raise fail("locations show", f"no location {location_id} is stored")
        described = _describe(ctx, row, reveal)
    for connection in described["connections"]:
        connection["url"] = _url(public_url, connection["connection_id"])
    typer.echo(json.dumps(described, indent=2))


# ------------------------------------------------------------- remove / rotate-secret


@locations_app.command("remove")
def remove(
    location_id: str = typer.Argument(..., help="The GHL location id."),
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Stop syncing a location: revoke its connections; its data and queue are kept."""
    import time

    from ghlsync.engine.locations._rows import get_location, uninstall_location

    with _open("locations remove", config) as ctx:
        if get_location(ctx.engine, location_id) is None:
            raise fail("locations remove", f"no location {location_id} is stored")
        changed = uninstall_location(ctx.engine, location_id, now=time.time())
    state = "is now uninstalled" if changed else "was already uninstalled"
    typer.echo(f"Location {location_id} {state}; its DripJobs connections are revoked.")


@locations_app.command("rotate-secret")
def rotate(
    location_id: str = typer.Argument(..., help="The GHL location id."),
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Give the location's live connection a new secret (same URL); printed once."""
    from ghlsync.engine.locations._rows import list_connections, rotate_secret

    with _open("locations rotate-secret", config) as ctx:
        live = [c for c in list_connections(ctx.engine, ctx.cipher, location_id) if not c.revoked]
        if not live:
            raise fail("locations rotate-secret", f"location {location_id} has no live connection")
        secret = rotate_secret(ctx.engine, ctx.cipher, live[-1].connection_id)
    assert secret is not None  # the connection was live a moment ago
    typer.echo(f"New webhook secret for {location_id} (shown once): {secret.reveal()}")
    typer.echo(
        "Update the `Authorization: Bearer <secret>` header of its Zaps; the old one "
        "is refused from now on (within a few seconds on other servers)."
    )
