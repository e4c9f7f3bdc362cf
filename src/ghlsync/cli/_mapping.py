"""`ghlsync init` and `ghlsync validate`: write the preset, check a config."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ghlsync._files import write_private_text
from ghlsync.mapping import AppConfig, ConfigError, config_source, load_config, render_preset


def init(
    sandbox: Annotated[
        str | None,
        typer.Option("--sandbox", metavar="URL", help="Point ghl: at a running `ghlsync sandbox`."),
    ] = None,
    path: Annotated[Path, typer.Option("--path", help="Where to write the file.")] = Path(
        "ghlsync.yaml"
    ),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented ghlsync.yaml with the DripJobs preset."""
    if path.exists() and not force:
        typer.echo(f"{path} already exists; use --force to overwrite it.", err=True)
        raise typer.Exit(1)
    # 0600: the file will hold the GHL token and the DripJobs secret.
    write_private_text(path, render_preset(sandbox))
    where = f" for the sandbox at {sandbox}" if sandbox else ""
    typer.echo(f"Wrote {path}{where}. Check it with: ghlsync validate --config {path}")


def validate(
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", help="The config file (default: $GHLSYNC_CONFIG, else ./ghlsync.yaml)."
        ),
    ] = None,
) -> None:
    """Check the config: print OK, or every problem with its key (exit 1)."""
    try:
        loaded = load_config(config)
    except ConfigError as error:
        for problem in error.problems:
            typer.echo(problem, err=True)
        raise typer.Exit(1) from None
    typer.echo(f"OK: {config_source(config)}: {_summary(loaded)}")


def _summary(config: AppConfig) -> str:
    fields = config.fields
    rules = len(fields.contact) + len(fields.task) + len(fields.note) + len(fields.appointment)
    return (
        f"{len(config.events)} events, {rules} field rules, {len(config.tags)} tag rules, "
        f"{len(config.custom_fields)} custom fields"
    )


def register(app: typer.Typer) -> None:
    """Add this area's commands to `app`."""
    app.command("init")(init)
    app.command("validate")(validate)
