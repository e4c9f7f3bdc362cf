"""`ghlsync sandbox`: serve the GHL API emulator."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this area's commands to `app`."""
    app.command("sandbox")(sandbox)


def sandbox(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8765, help="Port to listen on (0 picks a free one)."),
    burst: int = typer.Option(100, min=1, help="Requests allowed per interval per location."),
    interval_ms: int = typer.Option(10_000, min=1, help="Burst window in milliseconds."),
    daily: int = typer.Option(200_000, min=1, help="Requests allowed per day per location."),
) -> None:
    """Serve the GHL API v2 emulator (admin API under /_sandbox/)."""
    import uvicorn

    from ghlsync.sandbox import (
        DEFAULT_CALENDAR_ID,
        DEFAULT_CLIENT_ID,
        DEFAULT_CLIENT_SECRET,
        DEFAULT_LOCATION_ID,
        DEFAULT_TOKEN,
        create_app,
    )

    app = create_app(burst=burst, interval_ms=interval_ms, daily=daily)
    port = port or _free_port(host)
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "") else host
    typer.echo(f"GHL sandbox on http://{shown_host}:{port}")
    typer.echo(f"  location  {DEFAULT_LOCATION_ID}")
    typer.echo(f"  token     {DEFAULT_TOKEN}")
    typer.echo(f"  calendar  {DEFAULT_CALENDAR_ID}")
    typer.echo(f"  oauth     {DEFAULT_CLIENT_ID} / {DEFAULT_CLIENT_SECRET}")
    typer.echo(f"  limits    {burst} per {interval_ms} ms, {daily} per day")
    typer.echo("  admin     /_sandbox/requests, /_sandbox/state, /_sandbox/faults, /_sandbox/reset")
    uvicorn.run(app, host=host, port=port, log_level="warning")


def _free_port(host: str) -> int:
    import socket

    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])
