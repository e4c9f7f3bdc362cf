"""`ghlsync sandbox`: serve the GHL API emulator."""

from __future__ import annotations

from typing import Any

import typer


def register(app: typer.Typer) -> None:
    """Add this area's commands to `app`."""
    app.command("sandbox")(sandbox)


def sandbox(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(
        8765, min=0, max=65535, help="Port to listen on (0 picks a free one)."
    ),
    burst: int = typer.Option(100, min=1, help="Requests allowed per interval per location."),
    interval_ms: int = typer.Option(10_000, min=1, help="Burst window in milliseconds."),
    daily: int = typer.Option(200_000, min=1, help="Requests allowed per day per location."),
    dripjobs: bool = typer.Option(
        False, "--dripjobs", help="Also emulate DripJobs and its Zaps under /dripjobs/."
    ),
    dripjobs_target: str | None = typer.Option(
        None, help="With --dripjobs: ghlsync's base URL, where DripJobs triggers are POSTed."
    ),
    dripjobs_secret: str | None = typer.Option(
        None, help="With --dripjobs: the Bearer secret of ghlsync's DripJobs receiver."
    ),
    writeback_secret: str | None = typer.Option(
        None, help="With --dripjobs: the whsec_ secret write-backs are signed with."
    ),
) -> None:
    """Serve the GHL API emulator (admin API under /_sandbox/), and DripJobs with --dripjobs.

    API v2, and v3 where GHL publishes it, chosen by each request's Version header.
    """
    import uvicorn

    from ghlsync.cli._ports import require_free_port
    from ghlsync.sandbox import (
        DEFAULT_CALENDAR_ID,
        DEFAULT_CLIENT_ID,
        DEFAULT_CLIENT_SECRET,
        DEFAULT_LOCATION_ID,
        DEFAULT_TOKEN,
        create_app,
    )

    state = None
    if dripjobs:
        state = _dripjobs_state(dripjobs_target, dripjobs_secret, writeback_secret)
    app = create_app(burst=burst, interval_ms=interval_ms, daily=daily, dripjobs=state)
    port = port or _free_port(host)
    require_free_port("sandbox", host, port)  # before the banner: no banner for a dead server
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "") else host
    typer.echo(f"GHL sandbox on http://{shown_host}:{port}")
    typer.echo(f"  location  {DEFAULT_LOCATION_ID}")
    typer.echo(f"  token     {DEFAULT_TOKEN}")
    typer.echo(f"  calendar  {DEFAULT_CALENDAR_ID}")
    typer.echo(f"  oauth     {DEFAULT_CLIENT_ID} / {DEFAULT_CLIENT_SECRET}")
    typer.echo(f"  limits    {burst} per {interval_ms} ms, {daily} per day")
    typer.echo("  admin     /_sandbox/requests, /_sandbox/state, /_sandbox/faults, /_sandbox/reset")
    if state is not None:
        _echo_dripjobs(f"http://{shown_host}:{port}", state)
    uvicorn.run(app, host=host, port=port, log_level="warning")


def _dripjobs_state(target: str | None, secret: str | None, writeback_secret: str | None) -> Any:
    """The DripJobs emulator's state, configured from the command line."""
    from ghlsync.sandbox.dripjobs import DripJobsState
    from ghlsync.sandbox.dripjobs._signature import key_of

    state = DripJobsState()
    state.settings.ghlsync_url = target
    state.settings.secret = secret
    if writeback_secret:
        try:
            key_of(writeback_secret)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--writeback-secret") from exc
        state.settings.writeback_secret = writeback_secret
    return state


def _echo_dripjobs(base: str, state: Any) -> None:
    settings = state.settings
    typer.echo("DripJobs emulator")
    typer.echo(f"  catch hooks  {base}/dripjobs/hooks/catch/<action>")
    typer.echo(
        "               (create_lead, create_appointment_request, update_appointment, move_deal)"
    )
    typer.echo(f"  signed with  {settings.writeback_secret}")
    target = settings.hook_url("<event>") or "(none yet: PUT /dripjobs/_admin/settings)"
    typer.echo(f"  triggers to  {target}")
    typer.echo("  admin        /dripjobs/_admin/state, /counters, /settings, /faults, /leads, ...")


def _free_port(host: str) -> int:
    import socket

    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])
