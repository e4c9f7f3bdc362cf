"""What the engine's commands share: the `--config` option, loading it, opening the store."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import typer

__all__ = ["CONFIG_OPTION", "JSON_OPTION", "fail", "load_config_or_fail", "open_store"]

CONFIG_OPTION = typer.Option(
    None, "--config", help="ghlsync.yaml to use (default: $GHLSYNC_CONFIG or ./ghlsync.yaml)."
)
JSON_OPTION = typer.Option(False, "--json", help="Print JSON instead of tables.")


def fail(command: str, message: str, code: int = 2) -> typer.Exit:
    """Print `ghlsync COMMAND: message` to stderr; the Exit to raise."""
    typer.echo(f"ghlsync {command}: {message}", err=True)
    return typer.Exit(code)


def load_config_or_fail(command: str, config: Path | None) -> Any:
    """The loaded `AppConfig`, or exit 2 with the configuration error."""
    from ghlsync.mapping import ConfigError, load_config

    try:
        return load_config(config)
    except ConfigError as exc:
        raise fail(command, str(exc)) from None


@contextmanager
def open_store(command: str, url: str) -> Iterator[sa.Engine]:
    """The store at `url`, migrated to the latest schema (every command migrates on start)."""
    from ghlsync.store import create_engine, migrate

    engine = create_engine(url)
    try:
        try:
            migrate(engine)
        except sa.exc.SQLAlchemyError as exc:
            raise fail(command, f"cannot open the store: {exc.__class__.__name__}: {exc}") from None
        yield engine
    finally:
        engine.dispose()
