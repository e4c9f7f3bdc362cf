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

from ghlsync.cli._engine_common import (
    CONFIG_OPTION,
    JSON_OPTION,
    cipher_or_fail,
    fail,
    load_config_or_fail,
    open_store,
)
from ghlsync.cli._tables import Column, FitTable, print_table
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
    api_version: str | None = typer.Option(
        None,
        "--api-version",
        help="GHL API for this location: v2 or v3 (default: ghl.api_version of the config).",
    ),
    public_url: str = _URL_OPTION,
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Add a location and print its DripJobs webhook URL and secret (shown once)."""
    if token and from_company:
        raise fail("locations add", "give --token or --from-company, not both")
    if api_version not in (None, "v2", "v3"):
        raise fail("locations add", f"--api-version is v2 or v3, not {api_version!r}")
    with _open("locations add", config) as ctx:
        override = _read_override(ctx, mapping)
        before = ctx.vault().status(location_id)
        _store_token(ctx, location_id, token, from_company)
        done = _install(ctx, location_id, from_company, name)
        _set_options(ctx, location_id, calendar, override, api_version)
        after = ctx.vault().status(location_id)
    _print_added(location_id, done, public_url)
    _print_token_change(before, after, token is not None)
    _warn_if_configured(ctx.config, location_id, token is not None)


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
    # Only an explicit --from-company may swap a stored Private Integration token for a
    # minted one; re-adding a location never does it silently.
    install = installer.install_location(location_id, company, name, replace_private=bool(company))
    try:
        return asyncio.run(install)
    except GHLError as exc:
        raise fail("locations add", f"GHL refused the location token: {exc}") from None


def _set_options(
    ctx: _Ctx,
    location_id: str,
    calendar: str | None,
    override: str | None,
    api_version: str | None = None,
) -> None:
    import time

    from ghlsync.engine.locations._rows import set_location_options

    values: dict[str, str | None] = {}
    if api_version is not None:
        values["api_version"] = api_version
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


def _print_token_change(before: Any, after: Any, given: bool) -> None:
    if before is None or after is None:
        return
    if before.kind == "private" and after.kind != "private":
        typer.echo("Its Private Integration token was replaced by a token minted from the agency.")
    elif given:
        typer.echo("Its stored GHL token was replaced by the Private Integration token given.")


def _warn_if_configured(config: Any, location_id: str, given: bool) -> None:
    ghl = config.ghl
    if given and location_id == ghl.location_id and ghl.token is not None:
        typer.echo(
            f"Note: ghlsync.yaml configures ghl.token for {location_id}, and that token is used "
            "first; change ghl.token (or GHLSYNC_GHL_TOKEN) to replace it.",
            err=True,
        )


def _url(public_url: str, connection_id: str, event: str = "<event>") -> str:
    from ghlsync.engine.locations._install import webhook_path

    return public_url.rstrip("/") + webhook_path(connection_id, event)


# ------------------------------------------------------------------------ list / show


@locations_app.command("list")
def list_(config: Path | None = CONFIG_OPTION, as_json: bool = JSON_OPTION) -> None:
    """Every location (stored, and the one ghlsync.yaml configures): status, company,
    calendar, override, token, live connections."""
    with _open("locations list", config, key=False, write=False) as ctx:
        rows = _everything(ctx)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        typer.echo("No locations stored; add one with `ghlsync locations add LOCATION_ID`.")
        return
    print_table(_table(rows))  # fitted to the terminal; in full: show / --json


def _everything(ctx: _Ctx, reveal: bool = False) -> list[dict[str, Any]]:
    """The stored locations, with the configured one (ghl.location_id) merged in or added."""
    from ghlsync.engine.locations._rows import list_locations

    rows = [_describe(ctx, row, reveal) for row in list_locations(ctx.engine)]
    configured = ctx.config.ghl.location_id
    if configured is None:
        return rows
    stored = next((row for row in rows if row["location_id"] == configured), None)
    if stored is None:
        return [_configured(ctx.config, reveal), *rows]
    _merge_configured(ctx.config, stored, reveal)
    return rows


def _describe(ctx: _Ctx, row: Any, reveal: bool = False) -> dict[str, Any]:
    from ghlsync.engine.locations._rows import list_connections
    from ghlsync.ghl._vault import stored_status

    # No key needed: secrets stay sealed unless --reveal gave `ctx` a cipher.
    connections = list_connections(ctx.engine, ctx.cipher, row.location_id)
    token = stored_status(ctx.engine, row.location_id)
    return {
        "location_id": row.location_id,
        "source": "store",
        "name": row.name,
        "status": row.status,
        "company_id": row.company_id,
        "calendar_id": row.calendar_id,
        "api_version": row.api_version or ctx.config.ghl.api_version,
        "mapping_override": row.mapping_override,
        "installed_at": row.installed_at,
        "uninstalled_at": row.uninstalled_at,
        "token": token.status if token is not None else "none",
        "token_kind": token.kind if token is not None else None,
        "connections": [_connection(c, reveal) for c in connections],
    }


def _configured(config: Any, reveal: bool) -> dict[str, Any]:
    """The location of the single-location set-up (`ghl:` + `dripjobs.secret`), no row."""
    entry: dict[str, Any] = {
        "location_id": config.ghl.location_id,
        "source": "ghlsync.yaml",
        "name": None,
        "status": "active",
        "company_id": None,
        "calendar_id": config.ghl.calendar_id,
        "api_version": config.ghl.api_version,
        "mapping_override": None,
        "installed_at": None,
        "uninstalled_at": None,
        "token": "none",
        "token_kind": None,
        "connections": [],
    }
    _merge_configured(config, entry, reveal)
    return entry


def _merge_configured(config: Any, entry: dict[str, Any], reveal: bool) -> None:
    """What ghlsync.yaml adds to a location: its token (used first) and the default URL."""
    if entry["source"] == "store":
        entry["source"] = "store + ghlsync.yaml"
    if config.ghl.token is not None:
        entry["token"], entry["token_kind"] = "ghl.token", "config"
    entry["calendar_id"] = entry["calendar_id"] or config.ghl.calendar_id
    secret = config.dripjobs.secret
    shown = "not set" if secret is None else (secret.reveal() if reveal else str(secret))
    default = {
        "connection_id": "default",
        "path": "/hooks/dripjobs/<event>",
        "secret": shown,
        "created_at": None,
        "revoked_at": None,
    }
    entry["connections"] = [default, *entry["connections"]]


def _connection(connection: Any, reveal: bool) -> dict[str, Any]:
    secret = connection.secret
    return {
        "connection_id": connection.connection_id,
        "path": f"/hooks/dripjobs/{connection.connection_id}/<event>",
        "secret": secret.reveal() if reveal else str(secret),
        "created_at": connection.created_at,
        "revoked_at": connection.revoked_at,
    }


def _table(rows: list[dict[str, Any]]) -> FitTable:
    flexible = ("location", "name", "status", "company", "calendar")
    columns = [Column(name, flex=True) for name in flexible]
    columns += [Column("override"), Column("token", flex=True), Column("live", justify="right")]
    table = FitTable("Locations (one in full: locations show ID)", columns)
    for row in rows:
        live = [c for c in row["connections"] if c["revoked_at"] is None]
        table.add_row(
            row["location_id"],
            row["name"] or ("(ghlsync.yaml)" if row["source"] == "ghlsync.yaml" else ""),
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
    as_json: bool = JSON_OPTION,
) -> None:
    """One location: its webhook URLs (secrets masked unless --reveal), token, calendar and
    mapping override."""
    with _open("locations show", config, key=reveal, write=False) as ctx:
        found = [e for e in _everything(ctx, reveal) if e["location_id"] == location_id]
    if not found:
        raise fail("locations show", f"no location {location_id} is stored or configured")
    described = found[0]
    for connection in described["connections"]:
        connection["url"] = public_url.rstrip("/") + connection["path"]
    if as_json:
        typer.echo(json.dumps(described, indent=2))
        return
    typer.echo("\n".join(_readable(described)))


def _readable(entry: dict[str, Any]) -> list[str]:
    """`show` for people: one fact a line, the override as written, one line per URL."""
    lines = [f"Location {entry['location_id']}: {entry['status']} (from {entry['source']})"]
    for label, value in (
        ("name", entry["name"]),
        ("company", entry["company_id"]),
        ("calendar", entry["calendar_id"]),
        ("GHL API", entry.get("api_version")),
        ("GHL token", _token_words(entry)),
        ("installed", _when(entry["installed_at"])),
        ("uninstalled", _when(entry["uninstalled_at"])),
    ):
        if value:
            lines.append(f"  {label + ':':<13}{value}")
    lines.append("  DripJobs webhook URLs (send `Authorization: Bearer <secret>`):")
    for connection in entry["connections"] or []:
        state = "revoked" if connection["revoked_at"] is not None else "live"
        lines.append(f"    {connection['url']}  [{state}]  secret: {connection['secret']}")
    if not entry["connections"]:
        lines.append("    none")
    override = entry["mapping_override"]
    if override:
        lines.append("  mapping override:")
        lines += [f"    {line}" for line in override.strip().splitlines()]
    return lines


def _token_words(entry: dict[str, Any]) -> str:
    kind = {
        "config": "ghl.token in ghlsync.yaml (used first)",
        "private": "Private Integration token, stored",
        "oauth": "OAuth, stored",
    }.get(entry["token_kind"] or "", "")
    if entry["token"] in ("ghl.token", "none"):
        return kind or "none: add one with `ghlsync locations add LOCATION --token ...`"
    return f"{entry['token']} ({kind})" if kind else entry["token"]


def _when(epoch: float | None) -> str:
    import time

    if epoch is None:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch))


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
