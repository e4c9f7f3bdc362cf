"""The whole pipeline on loopback: sandbox GHL, store, real receiver, real worker.

```python
async with Pipeline(PipelineOptions()) as pipe:
    answers = await pipe.send(events)          # over HTTP, Bearer secret, per-customer order
    await pipe.wait_drained()                  # until the queue has nothing pending or leased
    summary = await pipe.summarize(events, answers, expected)   # counts + verification
```

`run_pipeline(customers, seed, options)` does all of it with the demo stream. The worker is
the one `ghlsync serve` builds (`ghlsync.server._run.build_worker`); with
`start_worker=False` nothing syncs until the caller runs workers of its own (e.g. as
subprocesses against `pipe.database_url`, with `pipe.environment()`).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx2
import sqlalchemy as sa

from ghlsync._secret import Secret
from ghlsync.demo._send import Answer, Progress, send_stream
from ghlsync.demo._stream import DemoEvent, Expected, build_stream
from ghlsync.demo._summary import (
    Summary,
    audit_outcomes,
    count_answers,
    dead_letter_lines,
)
from ghlsync.demo._twoway_wiring import two_way_config, wire_two_way
from ghlsync.demo._verify import verify_answers, verify_dead_letters, verify_state
from ghlsync.engine import Worker, queue_status
from ghlsync.mapping import AppConfig, Mapper
from ghlsync.sandbox import SandboxServer
from ghlsync.sandbox.dripjobs import DripJobsState
from ghlsync.server import create_app, serve_in_thread
from ghlsync.server._run import build_worker
from ghlsync.store import create_engine, migrate

SyncProgress = Callable[[int, int], None]
"""Called with (entities finished, entities queued) while the worker syncs."""

_POLL_SECONDS = 0.05


class PipelineError(Exception):
    """The pipeline could not run (a part failed to start, or the queue never drained)."""


@dataclass(frozen=True, slots=True)
class PipelineOptions:
    """How to run the pipeline; the defaults are the demo's."""

    database_url: str | None = None  # None: a SQLite file in a temporary directory
    keep: bool = False  # keep that temporary directory (and its database) afterwards
    faults: Mapping[str, float] = field(default_factory=dict)  # PUT /_sandbox/faults
    start_worker: bool = True
    worker_concurrency: int | None = None  # None: the config's (`worker.concurrency`)
    send_concurrency: int = 8
    client_timeout: float = 30.0  # the GHL client's; lower it with a "timeout" fault
    burst: int = 100  # the sandbox's rate limit: `burst` requests per `interval_ms`
    interval_ms: int = 1000
    drain_timeout: float = 120.0
    secret: str = "demo-webhook-secret"  # noqa: S105 -- loopback only, for the demo receiver
    two_way: bool = False  # also the DripJobs emulator, write-backs and GHL webhooks (_twoway)


class Pipeline:
    """Sandbox, store, receiver and worker, started on enter and stopped on exit."""

    def __init__(self, options: PipelineOptions | None = None) -> None:
        self.options = options or PipelineOptions()
        self._stack = contextlib.ExitStack()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.temp_dir: Path | None = None
        self.database_url = ""
        self.receiver_url = ""
        self.sandbox: SandboxServer | None = None
        self.engine: sa.Engine | None = None
        self.config = AppConfig.default()
        self.worker: Worker | None = None

    async def __aenter__(self) -> Pipeline:
        try:
            await asyncio.to_thread(self._start_parts)
            await self._put_faults(self.options.faults)
            if self.options.start_worker:
                self._start_worker()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        await self.close()

    @property
    def location_id(self) -> str:
        """The sandbox location the pipeline writes to."""
        return SandboxServer.location_id

    def _start_parts(self) -> None:
        opts = self.options
        self.database_url = opts.database_url or self._temporary_sqlite()
        dripjobs = DripJobsState() if opts.two_way else None
        self.sandbox = SandboxServer(
            burst=opts.burst, interval_ms=opts.interval_ms, dripjobs=dripjobs
        ).start()
        self._stack.callback(self.sandbox.stop)
        self.config = pipeline_config(self.database_url, self.sandbox, opts)
        if opts.two_way:
            self.config = two_way_config(self.config, self.sandbox, timeout=opts.client_timeout)
        self.engine = create_engine(self.database_url)
        self._stack.callback(self.engine.dispose)
        migrate(self.engine)
        mapper = Mapper(self.config)
        self.worker = build_worker(self.engine, self.config, mapper, timeout=opts.client_timeout)
        app = create_app(
            engine=self.engine, config=self.config, mapper=mapper, worker_state=self.worker
        )
        self.receiver_url = self._stack.enter_context(serve_in_thread(app))
        if opts.two_way:
            wire_two_way(self.sandbox, self.receiver_url, opts.secret)

    def _temporary_sqlite(self) -> str:
        self.temp_dir = Path(tempfile.mkdtemp(prefix="ghlsync-demo-"))
        if not self.options.keep:
            self._stack.callback(_remove_tree, self.temp_dir)
        return f"sqlite:///{self.temp_dir / 'ghlsync.db'}"

    def _start_worker(self) -> None:
        assert self.worker is not None
        self._task = asyncio.create_task(self.worker.run(self._stop), name="ghlsync-demo-worker")

    async def close(self) -> None:
        """Stop the worker (finishing its items), then the receiver, store and sandbox."""
        self._stop.set()
        if self._task is not None:  # a worker that crashed was reported by wait_drained
            await asyncio.gather(self._task, return_exceptions=True)
        if self.worker is not None:
            await self.worker.client.aclose()
        await asyncio.to_thread(self._stack.close)

    def environment(self) -> dict[str, str]:
        """`GHLSYNC_*` variables that point a `ghlsync worker` process at this pipeline."""
        assert self.sandbox is not None
        return {
            "GHLSYNC_DATABASE_URL": self.database_url,
            "GHLSYNC_GHL_BASE_URL": self.sandbox.url,
            "GHLSYNC_GHL_LOCATION_ID": self.sandbox.location_id,
            "GHLSYNC_GHL_TOKEN": self.sandbox.token,
            "GHLSYNC_GHL_CALENDAR_ID": self.sandbox.calendar_id,
            "GHLSYNC_DRIPJOBS_SECRET": self.options.secret,
        }

    async def send(
        self, events: Sequence[DemoEvent], progress: Progress | None = None
    ) -> list[Answer]:
        """POST every event to the receiver; answers in stream order."""
        return await send_stream(
            self.receiver_url,
            self.options.secret,
            events,
            concurrency=self.options.send_concurrency,
            progress=progress,
        )

    async def wait_drained(self, progress: SyncProgress | None = None) -> None:
        """Poll the queue until nothing is pending or leased; PipelineError on the deadline."""
        assert self.engine is not None
        deadline = time.monotonic() + self.options.drain_timeout
        while True:
            totals = (await asyncio.to_thread(queue_status, self.engine)).totals()
            finished = totals["done"] + totals["dead"]
            queued = finished + totals["pending"] + totals["leased"]
            if progress is not None:
                progress(finished, queued)
            if finished == queued:
                return
            self._check_worker()
            if time.monotonic() > deadline:
                raise PipelineError(
                    f"the queue did not drain in {self.options.drain_timeout:.0f} s: {totals}"
                )
            await asyncio.sleep(_POLL_SECONDS)

    def _check_worker(self) -> None:
        """A worker that died would leave the queue undrained until the deadline: fail now."""
        task = self._task
        if task is not None and task.done() and not task.cancelled():
            error = task.exception()
            raise PipelineError(f"the worker stopped: {error!r}") from error

    async def sandbox_json(self, path: str) -> Any:
        """GET a sandbox admin path (`/_sandbox/state`, `/_sandbox/counters`, ...)."""
        assert self.sandbox is not None
        async with httpx2.AsyncClient(base_url=self.sandbox.url, timeout=30) as client:
            response = await client.get(path)
            response.raise_for_status()
            return response.json()

    async def _put_faults(self, faults: Mapping[str, float]) -> None:
        if not faults:
            return
        assert self.sandbox is not None
        async with httpx2.AsyncClient(base_url=self.sandbox.url, timeout=30) as client:
            response = await client.put("/_sandbox/faults", json=dict(faults))
            if response.status_code != 200:
                raise PipelineError(f"the sandbox refused the faults {faults}: {response.text}")

    async def summarize(
        self, events: Sequence[DemoEvent], answers: list[Answer], expected: Expected
    ) -> Summary:
        """Counts from the audit log and the sandbox, and every verification problem."""
        assert self.engine is not None
        state = await self.sandbox_json("/_sandbox/state")
        counters = await self.sandbox_json("/_sandbox/counters")
        summary = Summary(
            events_sent=len(events),
            answers=count_answers(answers),
            outcomes=await asyncio.to_thread(audit_outcomes, self.engine),
            api_calls=int(counters["total_calls"]),
            throttled=int(counters["total_throttled"]),
            dead_letters=await asyncio.to_thread(dead_letter_lines, self.engine),
        )
        summary.problems = [
            *verify_answers(answers, len(events)),
            *verify_state(state, expected, self.location_id),
            *verify_dead_letters(len(summary.dead_letters), expected),
        ]
        return summary


def pipeline_config(database_url: str, sandbox: SandboxServer, opts: PipelineOptions) -> AppConfig:
    """The embedded preset pointed at the sandbox and the store; no file, no environment."""
    base = AppConfig.default()
    ghl = base.ghl.model_copy(
        update={
            "base_url": sandbox.url,
            "location_id": sandbox.location_id,
            "token": Secret(sandbox.token),
            "calendar_id": sandbox.calendar_id,
        }
    )
    worker = base.worker
    if opts.worker_concurrency is not None:
        worker = worker.model_copy(update={"concurrency": opts.worker_concurrency})
    dripjobs = base.dripjobs.model_copy(update={"secret": Secret(opts.secret)})
    return base.model_copy(
        update={"database_url": database_url, "ghl": ghl, "dripjobs": dripjobs, "worker": worker}
    )


async def run_pipeline(
    customers: int = 40,
    seed: int = 7,
    options: PipelineOptions | None = None,
    *,
    on_send: Progress | None = None,
    on_sync: SyncProgress | None = None,
) -> Summary:
    """Build the demo stream, push it through the pipeline, and verify the result."""
    events, expected = build_stream(customers, seed=seed)
    return await run_stream(events, expected, options, on_send=on_send, on_sync=on_sync)


async def run_stream(
    events: Sequence[DemoEvent],
    expected: Expected,
    options: PipelineOptions | None = None,
    *,
    on_send: Progress | None = None,
    on_sync: SyncProgress | None = None,
) -> Summary:
    """Push `events` through a fresh pipeline and verify the result against `expected`."""
    started = time.monotonic()
    async with Pipeline(options) as pipe:
        sent_at = time.monotonic()
        answers = await pipe.send(events, on_send)
        synced_at = time.monotonic()
        await pipe.wait_drained(on_sync)
        done_at = time.monotonic()
        summary = await pipe.summarize(events, answers, expected)
    summary.database_url = pipe.database_url
    summary.send_seconds = synced_at - sent_at
    summary.sync_seconds = done_at - synced_at
    summary.elapsed = time.monotonic() - started
    return summary


def _remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
