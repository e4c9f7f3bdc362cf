"""The `ghlsync` command. Each area registers its commands from its own module."""

from __future__ import annotations

import os
from typing import Any

import typer
import typer.core

from ghlsync import __version__
from ghlsync.cli import (
    _auth,
    _backfill,
    _call,
    _catalog,
    _check,
    _console,
    _demo,
    _engine,
    _locations,
    _mapping,
    _preview,
    _recipes,
    _reconcile,
    _record,
    _sandbox,
    _serve,
)
from ghlsync.cli._env_option import add_env_option


def _flags_show_no_type() -> None:
    """Help lists a flag (`--json`, `--reveal`, `--help`) bare, not as taking a `<bool>`.

    Typer's rich help prints every option's type; for an option that takes no value that reads
    as if one were expected, so flags report no type.
    """
    option = typer.core.TyperOption
    shown = option.display_type_rich

    def display_type_rich(self: typer.core.TyperOption, ctx: Any) -> str | None:
        return None if self.is_flag and self.metavar is None else shown(self, ctx)

    option.display_type_rich = display_type_rich  # type: ignore[method-assign]


_flags_show_no_type()

app = typer.Typer(
    name="ghlsync",
    help="Keep a DripJobs account and a GoHighLevel sub-account in sync.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ghlsync {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version and exit."
    ),
) -> None:
    """Keep a DripJobs account and a GoHighLevel sub-account in sync."""


for _module in (
    _demo,
    _sandbox,
    _call,
    _auth,
    _mapping,
    _check,
    _preview,
    _serve,
    _engine,
    _catalog,
    _locations,
    _backfill,
    _record,
    _reconcile,
    _console,
    _recipes,
):
    _module.register(app)
add_env_option(app)  # after every command is registered: each one with --config gets --env


def main() -> None:
    """The console entry point: no traceback reaches a user (GHLSYNC_DEBUG=1 shows it)."""
    try:
        app()
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    except Exception as exc:
        if os.environ.get("GHLSYNC_DEBUG"):
            raise
        typer.echo(
            f"ghlsync: unexpected error: {exc.__class__.__name__}: {exc}; this is a bug, please "
            "report it (run again with GHLSYNC_DEBUG=1 for the details)",
            err=True,
        )
        raise SystemExit(1) from None
