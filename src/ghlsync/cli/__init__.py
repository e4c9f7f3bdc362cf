"""The `ghlsync` command. Each area registers its commands from its own module."""

from __future__ import annotations

import typer

from ghlsync import __version__
from ghlsync.cli import (
    _auth,
    _call,
    _catalog,
    _demo,
    _engine,
    _locations,
    _mapping,
    _preview,
    _sandbox,
    _serve,
)

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
    _preview,
    _serve,
    _engine,
    _catalog,
    _locations,
):
    _module.register(app)


def main() -> None:
    app()
