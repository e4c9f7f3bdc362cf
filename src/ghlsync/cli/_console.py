"""`ghlsync console set-password`: the admin password of the web console (docs/console.md).

The password is read from the terminal (asked twice, not echoed) or, with `--stdin`, from the
first line of standard input (for scripts). Only its scrypt hash is stored, in the store
every `serve` reads, so it applies to every server at once; setting a new one signs out every
open console session.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import typer

from ghlsync.cli._engine_common import CONFIG_OPTION, fail, load_config_or_fail, open_store

__all__ = ["register"]

console_app = typer.Typer(
    help="The web console at /console of `ghlsync serve`.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    """Add `console` to `app`."""
    app.add_typer(console_app, name="console")


@console_app.command("set-password")
def set_password(
    config: Path | None = CONFIG_OPTION,
    stdin: bool = typer.Option(
        False, "--stdin", help="Read the password from the first line of standard input."
    ),
) -> None:
    """Set (or change) the console's admin password; open sessions end."""
    from ghlsync.console._password import MIN_LENGTH
    from ghlsync.console._password import set_password as store_password

    command = "console set-password"
    password = _read(stdin)
    if len(password) < MIN_LENGTH:
        raise fail(command, f"the password must be at least {MIN_LENGTH} characters long")
    loaded = load_config_or_fail(command, config)
    with open_store(command, loaded.database_url, write=True) as engine:
        store_password(engine, password, now=time.time())
    typer.echo("Console password set. Sign in at <server>/console (open sessions were signed out).")


def _read(stdin: bool) -> str:
    if stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first: str = typer.prompt("New console password", hide_input=True)
    again: str = typer.prompt("Repeat it", hide_input=True)
    if first != again:
        raise fail("console set-password", "the two passwords differ; nothing was changed")
    return first
