"""The HTTP app: the DripJobs webhook receiver, health and metrics.

Everything a request needs (verifiers, mapper, committer, metrics) is built once here, so the
hot path does no per-request setup.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig

from ghlsync import __version__
from ghlsync._clock import SYSTEM_CLOCK, Clock
from ghlsync.console import build_console
from ghlsync.engine import Delivery, accept, accept_many
from ghlsync.engine.locations._directory import LocationDirectory
from ghlsync.engine.locations._install import Installer
from ghlsync.ghl._webhooks import SqlReplayGuard, WebhookVerifier
from ghlsync.mapping import AppConfig, Mapper
from ghlsync.server._commit import GroupCommitter, LoopCommitter
from ghlsync.server._connections import ConnectionTable
from ghlsync.server._errors import install_json_errors
from ghlsync.server._fast import GhlsyncApp
from ghlsync.server._ghl_events import GHLEventIntake, is_ghl_event
from ghlsync.server._ghl_hooks import GHLWebhookReceiver
from ghlsync.server._ghl_scope import EventScope, configured_app_id, serves_location
from ghlsync.server._health import WorkerState
from ghlsync.server._hooks import DripJobsReceiver
from ghlsync.server._metrics import ReceiverMetrics
from ghlsync.server._probes import AdminGate, Probes
from ghlsync.server._queue_metrics import QueueCollector
from ghlsync.server._records import RecordsApi
from ghlsync.store import is_sqlite

# FastAPI's native OpenTelemetry hooks cost more per request than the whole receiver (they
# halved the ingest rate in bench/bench_ingest.py); counts are in /metrics instead.
_TELEMETRY: TelemetryConfig = {
    "tracing": False,
    "metrics": False,
    "logs": False,
    "operation_spans": False,
}
PG_WRITERS = 3  # PostgreSQL takes concurrent writers; SQLite has one at a time anyway


def _entity(delivery: Delivery) -> tuple[str, str, str]:
    return (delivery.location_id, delivery.entity_type, delivery.source_id)


def create_app(
    *,
    engine: sa.Engine,
    config: AppConfig,
    mapper: Mapper | None = None,
    clock: Clock = SYSTEM_CLOCK,
    worker_state: WorkerState | None = None,
    locations: LocationDirectory | None = None,
    installer: Installer | None = None,
) -> FastAPI:
    """The ghlsync HTTP app over `engine` (already migrated) and `config`.

    `locations` resolves per-location DripJobs connections (default: one over `engine`);
    `installer` acts on GHL's INSTALL/UNINSTALL webhooks (default: without a token vault).
    """
    mapper = mapper or Mapper(config)
    locations = locations or LocationDirectory(engine, config, mapper=mapper, clock=clock)
    # SQLite: the event loop commits (a writer thread only when the lock is taken);
    # PostgreSQL: writer threads, so one batch's round trips overlap another's.
    committer: GroupCommitter[Delivery]
    if is_sqlite(engine):
        committer = LoopCommitter(
            engine,
            accept,
            lock_order=_entity,
            accept_many=accept_many,
            # An in-process worker claims the new work at once, not at its next poll.
            on_accepted=getattr(worker_state, "wake", None),
        )
    else:
        committer = GroupCommitter(
            engine, accept, writers=PG_WRITERS, lock_order=_entity, accept_many=accept_many
        )
    metrics = ReceiverMetrics(QueueCollector(engine, clock))
    connections = ConnectionTable(config, locations)
    receiver = DripJobsReceiver(
        connections=connections,
        mapper=mapper,
        committer=committer,
        metrics=metrics,
        clock=clock,
        max_body_bytes=config.dripjobs.max_body_bytes,
        body_timeout=config.server.body_timeout,
        tolerance_seconds=config.dripjobs.timestamp_tolerance,
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        # Uvicorn has stopped taking requests: let the last commits finish, then stop.
        await asyncio.to_thread(committer.close)

    # No /docs, /redoc or /openapi.json: the public app describes nothing to strangers.
    app = GhlsyncApp(
        title="ghlsync",
        version=__version__,
        lifespan=lifespan,
        telemetry=_TELEMETRY,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    install_json_errors(app)
    # The hot path skips the middleware stack (`_fast.py`); the routes stay registered, so
    # other methods on these paths get the router's 405.
    app.serve_deliveries(receiver.handle)
    for path in ("/hooks/dripjobs/{event}", "/hooks/dripjobs/{connection}/{event}"):
        app.router.add_route(path, receiver.handle, methods=["POST"], include_in_schema=False)
    ghl_hooks = _ghl_receiver(engine, config, clock, locations, installer, metrics)
    app.router.add_route("/hooks/ghl", ghl_hooks.handle, methods=["POST"], include_in_schema=False)
    records = RecordsApi(engine, config, config.server.admin_token)
    app.router.add_route(
        "/api/records/{query:path}", records.handle, methods=["GET"], include_in_schema=False
    )
    # The web console (docs/console.md): its own Starlette app, behind its own sign-in.
    app.mount("/console", build_console(engine, config, locations, clock))
    Probes(
        engine,
        clock,
        worker_state,
        metrics,
        receiving_problem=connections.receiving_problem,
        gate=AdminGate(config.server.admin_token),
    ).install(app)
    return app


def _ghl_receiver(
    engine: sa.Engine,
    config: AppConfig,
    clock: Clock,
    locations: LocationDirectory,
    installer: Installer | None,
    metrics: ReceiverMetrics,
) -> GHLWebhookReceiver:
    """`POST /hooks/ghl`: signatures checked with `ghl.webhook_public_key` (and GHL's RSA key),
    then acted on only when ours (`EventScope`: our app id, a location this server serves)."""
    verifier = WebhookVerifier(
        ed25519_public_key=config.ghl.webhook_public_key,
        replay_guard=SqlReplayGuard(engine),
        clock=clock,
    )
    installer = installer or Installer(engine, locations, clock=clock)
    scope = EventScope(
        app_id=configured_app_id(config),
        serves=functools.partial(serves_location, locations),
    )
    return GHLWebhookReceiver(
        engine=engine,
        verifier=verifier,
        installer=installer,
        scope=scope,
        metrics=metrics,
        body_timeout=config.server.body_timeout,
        # Two-way sync (docs/two-way.md): GHL record events are taken only when it is on;
        # recipes (docs/recipes.md): the event types an enabled recipe names.
        events=GHLEventIntake(engine, clock, _wanted_ghl_events(config)),
    )


def _wanted_ghl_events(config: AppConfig) -> Callable[[str], bool]:
    """Which GHL event types go to the inbox: two-way's record events (when a write-back URL
    is configured) and the `ghl.<type>` triggers of enabled recipes."""
    from ghlsync.engine.flows.recipes._book import recipe_book

    named = {t.removeprefix("ghl.") for t in recipe_book(config).triggers() if t.startswith("ghl.")}
    twoway = config.writeback.enabled
    return lambda kind: kind in named or (twoway and is_ghl_event(kind))
