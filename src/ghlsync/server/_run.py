"""`ghlsync serve`: the receiver and the worker in one process, one event loop.

Shutdown order on SIGTERM/SIGINT: uvicorn stops accepting and finishes the requests in
flight (their commits included); then the worker is asked to stop and finishes the items it
holds, for at most `drain_seconds`, after which the leases of unfinished items are released
for other workers. A second signal while the worker drains cancels it (its leases expire and
another worker picks the items up, so nothing is lost either way).

With the worker in-process, the periodic reconcile sweep (`reconcile.every`, docs/reconcile.md)
runs as one more background task on the worker's GHL client; it stops with the worker, its
cursor kept in the store for the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from types import FrameType

import httpx2
import sqlalchemy as sa
import uvicorn
from fastapi import FastAPI

from ghlsync._heap import settle_heap
from ghlsync.engine import Worker
from ghlsync.engine.locations._services import LocationServices
from ghlsync.ghl import GHLClient, SqlRateLimiter
from ghlsync.mapping import AppConfig, Mapper
from ghlsync.reconcile import SweepSchedule, sweep_locations
from ghlsync.server._app import create_app
from ghlsync.server.guard._settings import (
    ConnectionLimits,
    ThrottledLog,
    fold_uvicorn_warnings,
    quiet_accept_errors,
    uvicorn_settings,
)
from ghlsync.store import create_engine, migrate

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class ServeError(Exception):
    """`serve` cannot start as configured; the message says what to set."""


@dataclass(frozen=True, slots=True)
class ServeOptions:
    """Where to listen and whether to run the worker in-process."""

    host: str = "127.0.0.1"
    port: int = 8080
    with_worker: bool = True
    drain_seconds: float = 30.0
    log_level: str = "info"
    access_log: bool = False  # one line per delivery costs more than accepting it


def serve(config: AppConfig, options: ServeOptions) -> None:
    """Migrate the store, then serve until a signal arrives; returns after a clean shutdown."""
    engine = create_engine(config.database_url)
    try:
        _migrate(engine)
        asyncio.run(_serve(engine, config, options))
    finally:
        engine.dispose()


def _migrate(engine: sa.Engine) -> None:
    try:
        migrate(engine)
    except sa.exc.SQLAlchemyError as exc:
        where = engine.url.render_as_string(hide_password=True)
        raise ServeError(f"cannot open the store at {where}: {exc.__class__.__name__}") from exc


async def _serve(engine: sa.Engine, config: AppConfig, options: ServeOptions) -> None:
    mapper = Mapper(config)
    # One set of location services: an UNINSTALL the receiver handles stops the worker at once.
    services = LocationServices.build(engine, config, mapper=mapper)
    worker = (
        build_worker(engine, config, mapper, services=services) if options.with_worker else None
    )
    app = create_app(
        engine=engine,
        config=config,
        mapper=mapper,
        worker_state=worker,
        locations=services.directory,
        installer=services.installer,
    )
    server = _uvicorn(app, options, ConnectionLimits.from_settings(config.server))
    settle_heap()  # everything the process keeps is built: the collector leaves it be
    stop = asyncio.Event()
    task = _start_worker(worker, stop, server, options.drain_seconds)
    sweeps = _start_sweeps(engine, config, worker, stop)
    try:
        with _signals_stop(stop, task):
            await server.serve()
            stop.set()
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if sweeps is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await sweeps
    finally:
        if worker is not None:
            await worker.client.aclose()


def _uvicorn(app: FastAPI, options: ServeOptions, limits: ConnectionLimits) -> uvicorn.Server:
    """Uvicorn with the connection limits of `server:` (`guard/`, docs/deployment.md)."""
    throttle = ThrottledLog()
    quiet_accept_errors(asyncio.get_running_loop(), throttle)
    fold_uvicorn_warnings()
    config = uvicorn.Config(
        app,
        host=options.host,
        port=options.port,
        lifespan="on",
        log_level=options.log_level,
        log_config=None,  # uvicorn's lines go to the handler `serve` set up (ghlsync._logging)
        access_log=options.access_log,
        **uvicorn_settings(limits.within_fd_limit(), throttle),
    )
    return uvicorn.Server(config)


def _start_worker(
    worker: Worker | None, stop: asyncio.Event, server: uvicorn.Server, drain_seconds: float
) -> asyncio.Task[None] | None:
    if worker is None:
        return None
    task = asyncio.create_task(worker.run(stop, drain_seconds=drain_seconds), name="ghlsync-worker")

    def _on_done(done: asyncio.Task[None]) -> None:
        # A worker that dies must not leave a receiver that accepts work nobody does.
        if not done.cancelled() and done.exception() is not None:
            server.should_exit = True

    task.add_done_callback(_on_done)
    return task


def _start_sweeps(
    engine: sa.Engine, config: AppConfig, worker: Worker | None, stop: asyncio.Event
) -> asyncio.Task[None] | None:
    """The periodic reconcile sweep, on the worker's client (its limiter is shared)."""
    if worker is None or not config.reconcile.enabled:
        return None
    configured = config.ghl.location_id
    schedule = SweepSchedule(
        engine, worker.client, config.reconcile, lambda: sweep_locations(engine, configured)
    )
    return asyncio.create_task(schedule.run(stop), name="ghlsync-reconcile")


@contextlib.contextmanager
def _signals_stop(stop: asyncio.Event, task: asyncio.Task[None] | None) -> Iterator[None]:
    """While uvicorn serves it owns SIGINT/SIGTERM; it re-raises them afterwards, to us."""
    loop = asyncio.get_running_loop()

    def _handle(_sig: int, _frame: FrameType | None) -> None:
        if stop.is_set() and task is not None:
            loop.call_soon_threadsafe(task.cancel)
        loop.call_soon_threadsafe(stop.set)

    previous = {sig: signal.signal(sig, _handle) for sig in _SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def build_worker(
    engine: sa.Engine,
    config: AppConfig,
    mapper: Mapper,
    *,
    timeout: float = 30.0,
    services: LocationServices | None = None,
    transport: httpx2.AsyncBaseTransport | None = None,
) -> Worker:
    """The engine's worker with a GHL client for every location that has a token.

    `timeout` is the GHL client's, in seconds (the demo's fault runs use a short one).
    `services` gives per-location calendars, mapping overrides and tokens (docs/locations.md).
    `transport` replaces the client's HTTP (an in-process GHL: the benchmarks).
    """
    services = services or LocationServices.build(engine, config, mapper=mapper)
    if not services.can_sync():
        raise ServeError(
            "the worker needs ghl.location_id and ghl.token (or GHLSYNC_GHL_LOCATION_ID and "
            "GHLSYNC_GHL_TOKEN), or locations connected through OAuth; run with --no-worker "
            "to only receive"
        )
    # The budget lives in the store, so `ghlsync worker` processes added later share it.
    limiter = SqlRateLimiter(engine)
    client = GHLClient(
        base_url=config.ghl.base_url,
        tokens=services.tokens,
        limiter=limiter,
        timeout=timeout,
        api_version=services.directory.api_version,  # v2 or v3 per location
        transport=transport,
    )
    return Worker(
        engine,
        client,
        mapper,
        config,
        limiter=services.gate(limiter),
        locations=services.directory,
        token_advice=services.tokens.unauthorized_fix,
    )
