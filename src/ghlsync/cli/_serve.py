"""`ghlsync serve`: the webhook receiver and the worker in one process."""

from __future__ import annotations

from pathlib import Path

import typer

from ghlsync.cli._worker import LOG_FORMAT_OPTION, LOG_LEVEL_OPTION, LogFormat, LogLevel

_HOST = typer.Option("127.0.0.1", "--host", help="Interface to listen on.")
_PORT = typer.Option(8080, "--port", min=0, max=65535, help="TCP port to listen on.")
_CONFIG = typer.Option(
    None, "--config", help="ghlsync.yaml to use (default: $GHLSYNC_CONFIG or ./ghlsync.yaml)."
)
_NO_WORKER = typer.Option(
    False, "--no-worker", help="Only receive webhooks; run `ghlsync worker` elsewhere."
)
_DRAIN = typer.Option(
    30.0,
    "--drain-seconds",
    min=0.0,
    help="On SIGTERM, how long the in-process worker may finish its items before their "
    "leases are released for other workers.",
)


def register(app: typer.Typer) -> None:
    """Add `serve` to `app`."""
    app.command("serve")(serve)


def serve(
    host: str = _HOST,
    port: int = _PORT,
    config: Path | None = _CONFIG,
    no_worker: bool = _NO_WORKER,
    drain_seconds: float = _DRAIN,
    log_level: LogLevel = LOG_LEVEL_OPTION,
    log_format: LogFormat = LOG_FORMAT_OPTION,
) -> None:
    """Receive DripJobs webhooks (POST /hooks/dripjobs/EVENT) and sync them to GHL; with the
    worker, also reconcile each location every `reconcile.every` (docs/reconcile.md)."""
    from ghlsync._logging import setup_logging
    from ghlsync.cli._engine_common import check_key_or_fail, load_config_or_fail, open_store
    from ghlsync.cli._ports import require_free_port
    from ghlsync.ghl._crypto import SecretKeyError
    from ghlsync.server._run import ServeError, ServeOptions
    from ghlsync.server._run import serve as run

    loaded = load_config_or_fail("serve", config)  # the store every command uses
    require_free_port("serve", host, port)
    with open_store("serve", loaded.database_url) as engine:  # created, migrated, checked
        check_key_or_fail("serve", engine)
    if loaded.environment is not None:  # which of the file's environments this process runs
        typer.echo(
            f"ghlsync serve: environment {loaded.environment} (GHL at {loaded.ghl.base_url})",
            err=True,
        )
    # After the checks: a refusal stays one line, not a line after the migration's log lines.
    setup_logging(log_level.value, log_format.value)  # uvicorn's lines included
    try:
        run(
            loaded,
            ServeOptions(
                host=host,
                port=port,
                with_worker=not no_worker,
                drain_seconds=drain_seconds,
                log_level=log_level.value,
            ),
        )
    except (ServeError, SecretKeyError) as exc:
        typer.echo(f"ghlsync serve: {exc}", err=True)
        raise typer.Exit(2) from None
