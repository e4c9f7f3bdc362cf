"""What every command shares: `--config`, loading it, opening the store, the encryption key.

One store everywhere: `serve`, `worker`, `status`, `dlq`, `locations`, `auth` and `call` all
read `ghlsync.yaml` (`--config`, else `$GHLSYNC_CONFIG`, else `./ghlsync.yaml`) through
`load_config_or_fail`, so they agree on `database_url`. A relative SQLite path in the file is
relative to the file's folder, not to wherever the command runs.

Commands that only read open the store with `open_store(..., write=False)`: it is never created
or migrated, and a missing or unfamiliar store is one clear line and a non-zero exit.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import typer

__all__ = [
    "CONFIG_OPTION",
    "JSON_OPTION",
    "check_key_or_fail",
    "cipher_or_fail",
    "describe_url",
    "fail",
    "load_config_or_fail",
    "open_store",
    "warn",
]

CONFIG_OPTION = typer.Option(
    None, "--config", help="ghlsync.yaml to use (default: $GHLSYNC_CONFIG or ./ghlsync.yaml)."
)
JSON_OPTION = typer.Option(False, "--json", help="Print JSON instead of tables.")


def fail(command: str, message: str, code: int = 2) -> typer.Exit:
    """Print `ghlsync COMMAND: message` to stderr; the Exit to raise."""
    typer.echo(f"ghlsync {command}: {message}", err=True)
    return typer.Exit(code)


def warn(message: str | None) -> None:
    """Print a warning line to stderr (nothing for None)."""
    if message:
        typer.echo(message, err=True)


# ------------------------------------------------------------------------------ config


def load_config_or_fail(command: str, config: Path | None) -> Any:
    """The loaded `AppConfig` with its SQLite path resolved, or exit 2 with the config error."""
    from ghlsync._files import permission_warning
    from ghlsync.engine.flows.recipes import recipe_book
    from ghlsync.mapping import ConfigError, config_source, load_config
    from ghlsync.mapping._load import PRESET_NAME

    try:
        loaded = load_config(config)
        recipe_book(loaded, config_source(config))  # invalid recipes stop every command
    except ConfigError as exc:
        raise fail(command, str(exc)) from None
    source = config_source(config)
    if source == PRESET_NAME:
        return loaded
    if _holds_secret(Path(source)):
        warn(permission_warning(Path(source), "the config file"))
    return _with_resolved_store(loaded, Path(source))


def _holds_secret(path: Path) -> bool:
    """True when the file itself (not the process environment) gives a GHL token (of the base
    `ghl:` or of one of its `environments:`) or the DripJobs secret."""
    import yaml

    try:
        raw = yaml.safe_load(path.read_text("utf-8")) or {}
    except (OSError, ValueError, yaml.YAMLError):
        return False
    if not isinstance(raw, dict):
        return False
    ghl, dripjobs = raw.get("ghl") or {}, raw.get("dripjobs") or {}
    environments = raw.get("environments") or {}
    per_env = [
        (env.get("ghl") or {}, "token")
        for env in (environments.values() if isinstance(environments, dict) else [])
        if isinstance(env, dict)
    ]
    return any(
        isinstance(section, dict) and bool(section.get(name))
        for section, name in ((ghl, "token"), (dripjobs, "secret"), *per_env)
    )


def _with_resolved_store(loaded: Any, source: Path) -> Any:
    from ghlsync.store import resolve_sqlite_url

    if os.environ.get("GHLSYNC_DATABASE_URL"):
        return loaded  # given in the shell: relative to where the command runs, as usual
    url = resolve_sqlite_url(loaded.database_url, source.resolve().parent)
    return loaded if url == loaded.database_url else loaded.model_copy(update={"database_url": url})


# ------------------------------------------------------------------------------- store


def describe_url(url: str) -> str:
    """The store as a person recognises it: the SQLite file, or the URL without password."""
    from ghlsync.store import normalize_url, sqlite_path

    path = sqlite_path(url)
    if path is not None:
        return str(path)
    return sa.make_url(normalize_url(url)).render_as_string(hide_password=True)


@contextmanager
def open_store(command: str, url: str, *, write: bool = True) -> Iterator[sa.Engine]:
    """The store at `url`: created and migrated to the latest schema when `write`, else
    only opened, and refused (exit 1) when missing or not at this ghlsync's schema."""
    from ghlsync.store import create_engine

    if not write:
        _require_file(command, url)
    engine = create_engine(url)
    try:
        _prepare(command, engine, url, write)
        _warn_loose(url)
        yield engine
    finally:
        engine.dispose()


def _require_file(command: str, url: str) -> None:
    from ghlsync.store import sqlite_path

    path = sqlite_path(url)
    if path is not None and not path.exists():
        raise fail(
            command,
            f"no store at {path}: nothing has been received into it yet, or database_url "
            "points elsewhere; check --config / $GHLSYNC_CONFIG (`ghlsync serve` creates it)",
            code=1,
        )


def _prepare(command: str, engine: sa.Engine, url: str, write: bool) -> None:
    from ghlsync.store import StoreVersionError, migrate

    where = describe_url(url)
    try:
        if write:
            migrate(engine)
        else:
            _check_schema(command, engine, where)
    except StoreVersionError as exc:
        raise fail(command, f"{where}: {exc}", code=1) from None
    except sa.exc.SQLAlchemyError as exc:
        raise fail(
            command,
            f"cannot open the store at {where} ({_reason(exc, url)}); check database_url in "
            "the config or $GHLSYNC_DATABASE_URL",
        ) from None


def _reason(exc: sa.exc.SQLAlchemyError, url: str) -> str:
    """The driver's first line, never the password."""
    from ghlsync.store import normalize_url

    lines = str(getattr(exc, "orig", None) or "").strip().splitlines()
    reason = lines[0] if lines else exc.__class__.__name__
    password = sa.make_url(normalize_url(url)).password
    return reason.replace(str(password), "***") if password else reason


def _check_schema(command: str, engine: sa.Engine, where: str) -> None:
    from ghlsync.store import StoreVersionError, current_revision, schema_state

    state = schema_state(engine)
    if state == "empty":
        raise fail(
            command,
            f"the store at {where} has no ghlsync tables yet; `ghlsync serve` or "
            "`ghlsync worker` creates them",
            code=1,
        )
    if state == "ahead":
        raise StoreVersionError.newer(str(current_revision(engine)))
    if state == "behind":
        raise fail(
            command,
            f"the store at {where} was written by an older ghlsync; start `ghlsync serve` or "
            "`ghlsync worker` once to upgrade it (this command only reads)",
            code=1,
        )


def _warn_loose(url: str) -> None:
    from ghlsync._files import permission_warning
    from ghlsync.store import sqlite_path

    path = sqlite_path(url)
    if path is not None:
        warn(permission_warning(path, "the database"))


# ------------------------------------------------------------------------------ cipher


def cipher_or_fail(command: str) -> Any:
    """The `TokenCipher` from GHLSYNC_SECRET_KEY (or the key file), or exit 2 saying why."""
    from ghlsync.ghl._crypto import SecretKeyError, TokenCipher

    try:
        return TokenCipher.from_env()
    except SecretKeyError as exc:
        raise fail(command, str(exc)) from None


def check_key_or_fail(command: str, engine: sa.Engine) -> None:
    """Exit 2 with one line when the encryption key is malformed, or cannot open the store's
    secrets: found at start, instead of on every delivery or sync."""
    from ghlsync.ghl._crypto import SecretKeyError, store_holds_secrets

    if not os.environ.get("GHLSYNC_SECRET_KEY") and not store_holds_secrets(engine):
        return  # nothing sealed, no key given: single-location mode needs none
    cipher = cipher_or_fail(command)
    try:
        cipher.check(engine)
    except SecretKeyError as exc:
        raise fail(command, str(exc)) from None
