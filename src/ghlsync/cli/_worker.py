"""`ghlsync worker`: sync queued work to GHL; run as many as you like against one database.

Signals: the first SIGTERM or SIGINT drains (no new claims; the items in flight get
`--drain-seconds`, then the leases of unfinished ones are released for other workers) and the
process exits 0. A second signal stops at once; the leases it held expire instead. A first
signal that comes while the worker is still starting (opening the store, reading the vault) is
kept: the worker then starts drained, claims nothing and exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import typer

from ghlsync.cli._engine_common import (
    CONFIG_OPTION,
    check_key_or_fail,
    fail,
    load_config_or_fail,
    open_store,
)

__all__ = ["LOG_FORMAT_OPTION", "LOG_LEVEL_OPTION", "LogFormat", "LogLevel", "worker"]

_log = logging.getLogger("ghlsync.worker")


class LogLevel(StrEnum):
    """`--log-level` choices."""

    debug = "debug"
    info = "info"
    warning = "warning"
    error = "error"


class LogFormat(StrEnum):
    """`--log-format` choices."""

    text = "text"
    json = "json"


LOG_LEVEL_OPTION = typer.Option(
    LogLevel.info,
    "--log-level",
    case_sensitive=False,
    help="Log lines at this level and above (debug adds one line per GHL call).",
)
LOG_FORMAT_OPTION = typer.Option(
    LogFormat.text,
    "--log-format",
    case_sensitive=False,
    help="text: timestamped lines; json: one JSON object a line, for a log shipper.",
)


def worker(
    config: Path | None = CONFIG_OPTION,
    concurrency: int | None = typer.Option(
        None,
        "--concurrency",
        min=1,
        help="Items syncing at once (default: worker.concurrency; unset: 32 on PostgreSQL,"
        " 16 on SQLite).",
    ),
    drain_seconds: float = typer.Option(
        30.0,
        "--drain-seconds",
        min=0,
        help="On SIGTERM, how long the items in flight may take before their leases are "
        "released to other workers.",
    ),
    log_level: LogLevel = LOG_LEVEL_OPTION,
    log_format: LogFormat = LOG_FORMAT_OPTION,
    metrics_port: int | None = typer.Option(
        None,
        "--metrics-port",
        min=0,
        max=65535,
        help="Serve this worker's own counters (GHL calls, sync outcomes, write-backs) at "
        "GET /metrics on this port, behind server.admin_token when set "
        "(docs/observability.md). Default: off.",
    ),
    metrics_host: str = typer.Option(
        "127.0.0.1", "--metrics-host", help="Interface for --metrics-port."
    ),
) -> None:
    """Sync queued work to GHL until stopped (SIGTERM/Ctrl-C drains, then exits 0)."""
    from ghlsync._logging import setup_logging

    with _EarlySignals() as early:  # a stop during start-up still drains and exits 0
        loaded = load_config_or_fail("worker", config)
        with open_store("worker", loaded.database_url) as engine:
            check_key_or_fail("worker", engine)
            services = _services(engine, loaded)
            if not services.can_sync():
                raise fail(
                    "worker",
                    "the worker needs a GHL token: ghl.location_id and ghl.token (or "
                    "GHLSYNC_GHL_LOCATION_ID and GHLSYNC_GHL_TOKEN), or locations connected "
                    "with `ghlsync auth login` / an agency install",
                )
            # After the checks: a refusal stays one line, without the migration's log lines.
            setup_logging(log_level.value, log_format.value)
            with _metrics(metrics_host, metrics_port, loaded):
                asyncio.run(_run(engine, loaded, services, concurrency, drain_seconds, early))


class _EarlySignals:
    """SIGTERM/SIGINT before the worker's event loop takes them over: the first is kept (and
    acted on once the loop runs), a second stops at once, as Ctrl-C does."""

    _SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.received = 0
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _EarlySignals:
        if threading.current_thread() is threading.main_thread():  # else: cannot, as before
            self._previous = {sig: signal.signal(sig, self._note) for sig in self._SIGNALS}
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():  # the caller's own, e.g. a test runner's
            signal.signal(sig, handler)

    def _note(self, signum: int, frame: object) -> None:
        self.received += 1
        if self.received > 1:
            raise KeyboardInterrupt


@contextlib.contextmanager
def _metrics(host: str, port: int | None, config: Any) -> Iterator[None]:
    """`--metrics-port`: the worker's counters on GET /metrics while it runs."""
    if port is None:
        yield
        return
    from ghlsync.server._metrics_port import metrics_endpoint

    try:
        endpoint = metrics_endpoint(host, port, config.server.admin_token)
        url = endpoint.__enter__()
    except OSError as exc:
        raise fail("worker", f"cannot listen on {host}:{port} for --metrics-port: {exc}") from None
    _log.info("worker metrics at %s", url)
    try:
        yield
    finally:
        endpoint.__exit__(None, None, None)


def _services(engine: sa.Engine, config: Any) -> Any:
    """Per-location tokens (config, then the vault), calendars and mappings."""
    from ghlsync.engine.locations._services import LocationServices
    from ghlsync.ghl._crypto import SecretKeyError

    try:
        return LocationServices.build(engine, config)
    except SecretKeyError as exc:
        raise fail("worker", f"cannot open the token vault: {exc}") from None


async def _run(
    engine: sa.Engine,
    config: Any,
    services: Any,
    concurrency: int | None,
    drain: float,
    early: _EarlySignals,
) -> None:
    from ghlsync._heap import settle_heap
    from ghlsync.engine import Worker
    from ghlsync.ghl._client import GHLClient
    from ghlsync.ghl._ratelimit import SqlRateLimiter
    from ghlsync.mapping import Mapper

    # Shared budget: every worker process of a location takes its calls from one row.
    limiter = SqlRateLimiter(engine)
    client = GHLClient(
        base_url=config.ghl.base_url,
        tokens=services.tokens,
        limiter=limiter,
        api_version=services.directory.api_version,  # v2 or v3 per location
    )
    runner = Worker(
        engine,
        client,
        Mapper(config),
        config,
        limiter=services.gate(limiter),  # no budget for uninstalled locations: not claimed
        locations=services.directory,
        concurrency=concurrency,
        token_advice=services.tokens.unauthorized_fix,
    )
    settle_heap()  # everything the process keeps is built: the collector leaves it be
    stop = asyncio.Event()
    task = asyncio.ensure_future(runner.run(stop, drain_seconds=drain))
    _on_signals(stop, task)
    if early.received:
        stop.set()  # stopped while starting: drain at once
    _log.info("worker %s running (SIGTERM/Ctrl-C drains)", runner.worker_id)
    try:
        await task
    except asyncio.CancelledError:
        _log.warning("worker %s stopped without draining", runner.worker_id)
    finally:
        await client.aclose()
    _log.info(
        "worker %s stopped after %d items, %d leases released",
        runner.worker_id,
        runner.processed,
        runner.released,
    )


def _on_signals(stop: asyncio.Event, task: asyncio.Future[None]) -> None:
    loop = asyncio.get_running_loop()

    def _handle() -> None:
        if stop.is_set():
            task.cancel()  # a second signal: do not wait for the drain
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, _handle)
