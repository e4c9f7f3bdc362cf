"""`ghlsync check [--env production]`: the go-live preflight, one ✓/✗ line per check."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from ghlsync.cli._engine_common import CONFIG_OPTION, load_config_or_fail

__all__ = ["check", "register"]

_ENV = typer.Option(
    "--env",
    metavar="NAME",
    help="The environment to check (environments: of ghlsync.yaml); default: $GHLSYNC_ENV, "
    "else the file's environment: key.",
    show_default=False,
)


def check(
    env: Annotated[str | None, _ENV] = None,
    location: Annotated[
        str | None,
        typer.Option(
            "--location",
            metavar="ID",
            help="Check this location (its token from the store) instead of ghl.location_id.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the lines as JSON.")] = False,
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Go-live preflight of one environment: each check ✓ or ✗ with the fix.

    Token and scopes, location and calendar, every custom field, pipeline, stage, user and
    workflow the mapping names, the GHL webhook key, the write-back URLs, and one harmless
    test request per write path (real against a sandbox, a dry run against GHL). Exit 0 only
    when every line passes."""
    from ghlsync.mapping import selected_environment
    from ghlsync.preflight import run_checks

    with selected_environment(env):
        loaded = load_config_or_fail("check", config)
    credentials = _credentials(loaded, location)
    if location and location != loaded.ghl.location_id:
        loaded = _for_location(loaded, location)
    lines = asyncio.run(run_checks(loaded, location_id=location, credentials=credentials))
    if as_json:
        typer.echo(json.dumps(_as_json(loaded, lines), indent=2))
    else:
        _print(loaded, lines)
    if not all(line.ok for line in lines):
        raise typer.Exit(1)


def _for_location(config: Any, location: str) -> Any:
    """The config as the worker runs it for another location: its own calendar (stored by
    `ghlsync locations add --calendar`), never the configured location's."""
    import sqlalchemy as sa

    from ghlsync.engine.locations._rows import get_location
    from ghlsync.store import create_engine, sqlite_path

    calendar = None
    path = sqlite_path(config.database_url)
    if path is None or path.exists():
        engine = create_engine(config.database_url)
        try:
            row = get_location(engine, location)
            calendar = row.calendar_id if row is not None else None
        except sa.exc.SQLAlchemyError:
            calendar = None
        finally:
            engine.dispose()
    ghl = config.ghl.model_copy(update={"location_id": location, "calendar_id": calendar})
    return config.model_copy(update={"ghl": ghl})


def _credentials(config: Any, location: str | None) -> Any:
    """The config's token for its location; for another location (or none configured), the
    token stored for it in the environment's store, when one can be read."""
    from ghlsync.preflight import Credentials

    key = location or config.ghl.location_id
    if config.ghl.token is not None and key == config.ghl.location_id:
        return Credentials(config.ghl.token)
    if key is None:
        return Credentials(None)
    return _stored(config, key) or Credentials(None)


def _stored(config: Any, key: str) -> Any:
    import sqlalchemy as sa

    from ghlsync.engine.locations._services import oauth_from_env
    from ghlsync.ghl._crypto import SecretKeyError, TokenCipher
    from ghlsync.ghl._errors import GHLError
    from ghlsync.ghl._vault import TokenVault, stored_status
    from ghlsync.preflight import Credentials
    from ghlsync.store import create_engine, sqlite_path

    path = sqlite_path(config.database_url)
    if path is not None and not path.exists():
        return None
    engine = create_engine(config.database_url)
    try:
        status = stored_status(engine, key)
        if status is None:
            return None
        vault = TokenVault(engine, TokenCipher.from_env(), oauth_from_env(config))
        token = asyncio.run(vault.token(key))
        return Credentials(token, status.scopes if status.kind == "oauth" else None, status.kind)
    except (sa.exc.SQLAlchemyError, SecretKeyError, GHLError):
        return None
    finally:
        engine.dispose()


def _print(config: Any, lines: list[Any]) -> None:
    where = f" (environment {config.environment})" if config.environment else ""
    typer.echo(f"ghlsync check{where}: GHL at {config.ghl.base_url}")
    for line in lines:
        mark = "✓" if line.ok else "✗"
        typer.echo(f"{mark} {line.check}: {line.message}")
        if line.fix:
            typer.echo(f"    fix: {line.fix}")
    bad = sum(not line.ok for line in lines)
    if bad:
        typer.echo(f"NOT READY: {bad} of {len(lines)} checks failed; fix them and run it again")
    else:
        typer.echo(f"READY: all {len(lines)} checks pass")


def _as_json(config: Any, lines: list[Any]) -> dict[str, Any]:
    return {
        "environment": config.environment,
        "base_url": config.ghl.base_url,
        "ok": all(line.ok for line in lines),
        "checks": [line.to_dict() for line in lines],
    }


def register(app: typer.Typer) -> None:
    """Add `check` to `app`."""
    app.command("check")(check)
