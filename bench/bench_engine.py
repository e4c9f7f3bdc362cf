"""Engine benchmarks: changes synced per second, and webhook → GHL write latency.

    python bench/bench_engine.py [--db sqlite|postgresql|both] [--write]

Everything runs against an *instant GHL* (`bench/_instant_ghl.py`: an `httpx2.MockTransport`
answering each call at once with the shapes the specs give), so what is measured is ghlsync
itself: receiver, store, queue, worker, flows, GHL client. Each scenario gets a fresh store
(a SQLite file; a PostgreSQL database created for the run and dropped after it), first syncs
the contacts the timed events refer to (untimed), then:

- **worker only**: N deliveries accepted with `engine.accept`, then the timed part: the real
  `Worker` (`worker.run`) draining them; with no rate limiter, and with `SqlRateLimiter` (what
  `ghlsync serve` uses);
- **pipeline**: like `ghlsync serve` (uvicorn and the worker on one event loop, one process);
  a load generator in another process (`bench/_engine_workload.py`, raw HTTP/1.1) sends N
  deliveries as fast as 50 connections allow; timed from its first send to the worker having
  settled the last item;
- **latency**: the same server, the generator sending 100 events/s (open loop) for ~25 s;
  per event, from the moment its request was written to the moment the instant GHL received
  the write carrying its marker (both `time.monotonic()`, one clock across processes on Linux).

By default the instant GHL refuses to say whether its location allows duplicate contacts, so
a new customer takes the contact flow's upsert path (an upsert and a tag call, 2 calls, the
shape the history of these figures has); the rows marked "duplicates refused" answer as a
location at GHL's default setting does, where a new customer is one create call.

Baselines in the same process: the worker with a no-op `sync_event` (queue cost alone), the
GHL client alone against the instant GHL (calls/s), and the worker against the sandbox app
in-process (`httpx2.ASGITransport`, limits lifted) instead of the instant GHL. Every timed
run checks that each change reached GHL exactly once (its marker in exactly one write) and
that the queue ended empty with no dead letters; a failed check is printed and exits 1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import os
import platform
import re
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx2
import sqlalchemy as sa
import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _engine_workload import MARKER, SECRET, Event, pool_event, pool_size, timed_event
from _instant_ghl import InstantGHL
from ghlsync._heap import settle_heap
from ghlsync._secret import Secret
from ghlsync.dripjobs import fold_keys
from ghlsync.engine import Delivery, Worker, accept
from ghlsync.engine._worker import DEFAULT_CONCURRENCY, SQLITE_CONCURRENCY
from ghlsync.engine.locations._services import LocationServices
from ghlsync.ghl import GHLClient, SqlRateLimiter, StaticTokens
from ghlsync.mapping import AppConfig, Mapper
from ghlsync.sandbox import DEFAULT_CALENDAR_ID, DEFAULT_LOCATION_ID, DEFAULT_TOKEN, SandboxState
from ghlsync.sandbox import create_app as create_sandbox_app
from ghlsync.server import bind_loopback, create_app
from ghlsync.server._run import build_worker
from ghlsync.server.guard._settings import ConnectionLimits, uvicorn_settings
from ghlsync.store import begin_immediate, create_engine, migrate
from ghlsync.store._tables_engine import dead_letters, work_items

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "benchmarks.md"
PG_ADMIN = os.environ.get(
    "GHLSYNC_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
GHL_URL = "https://services.leadconnectorhq.com"
TARGET_RATE, TARGET_P50_MS, TARGET_P99_MS = 1000.0, 50.0, 250.0


@dataclass
class Result:
    """One timed scenario: changes (or calls) per second, latencies, and what went wrong."""

    store: str
    scenario: str
    count: int
    seconds: float
    unit: str = "changes"
    latencies_ms: list[float] = field(default_factory=list)
    answer_ms: list[float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    note: str = ""
    cpu: float = 0.0  # CPU seconds this process (all its threads) spent on the timed part

    @property
    def cpu_ms(self) -> float:
        """CPU per change: what bounds the rate once the cores are not shared."""
        return self.cpu / self.count * 1000 if self.count else 0.0

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0

    def pct(self, q: float, values: Sequence[float] | None = None) -> float:
        data = sorted(self.latencies_ms if values is None else values)
        if not data:
            return float("nan")
        return data[min(len(data) - 1, round(q / 100 * (len(data) - 1)))]


# ---------------------------------------------------------------- stores and configuration


@contextmanager
def database(kind: str, workdir: Path) -> Iterator[str]:
    """A fresh, empty store URL of `kind` (a PostgreSQL database is dropped afterwards)."""
    if kind == "sqlite":
        yield f"sqlite:///{workdir / f'engine-{uuid.uuid4().hex[:8]}.db'}"
        return
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    name = f"ghlsync_bench_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield sa.make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def bench_config(concurrency: int | None = None) -> AppConfig:
    """The embedded preset, pointed at the sandbox's ids (the instant GHL takes any)."""
    config = AppConfig.default()
    ghl = config.ghl.model_copy(
        update={
            "location_id": DEFAULT_LOCATION_ID,
            "calendar_id": DEFAULT_CALENDAR_ID,
            "token": Secret(DEFAULT_TOKEN),
        }
    )
    dripjobs = config.dripjobs.model_copy(update={"secret": Secret(SECRET)})
    update: dict[str, Any] = {"ghl": ghl, "dripjobs": dripjobs}
    if concurrency is not None:
        update["worker"] = config.worker.model_copy(update={"concurrency": concurrency})
    return config.model_copy(update=update)


def to_delivery(mapper: Mapper, event: Event) -> Delivery:
    """What the receiver builds from this POST."""
    folded = fold_keys(event.payload)
    key = mapper.entity_key(event.name, folded)
    updated = mapper.source_updated_at(event.name, folded)
    return Delivery(
        connection_id="default",
        location_id=DEFAULT_LOCATION_ID,
        event=event.name,
        delivery_id=str(folded["delivery_id"]),
        payload=folded,
        entity_type=key.type,
        source_id=key.source_id,
        source_updated_at=None if updated is None else updated.timestamp(),
        received_at=time.time(),
        action=mapper.config.events[event.name].action,
    )


def accept_all(engine: sa.Engine, mapper: Mapper, events: Sequence[Event]) -> None:
    """Accept every event, 100 per transaction (as the receiver's group commit would)."""
    deliveries = [to_delivery(mapper, e) for e in events]
    for start in range(0, len(deliveries), 100):
        with begin_immediate(engine) as conn:
            for delivery in deliveries[start : start + 100]:
                accept(conn, delivery)


def ghl_client(
    transport: httpx2.AsyncBaseTransport | None, limiter: Any = None, base_url: str = GHL_URL
) -> GHLClient:
    """The real GHL client, over `transport` (None: real HTTP to `base_url`)."""
    return GHLClient(
        base_url=base_url,
        tokens=StaticTokens({DEFAULT_LOCATION_ID: DEFAULT_TOKEN}),
        limiter=limiter,
        transport=transport,
    )


def sandbox_transport() -> httpx2.AsyncBaseTransport:
    """The sandbox app in-process, GHL's limits lifted."""
    state = SandboxState(burst=10**9, interval_ms=1000, daily=10**9)
    return httpx2.ASGITransport(app=create_sandbox_app(state))


# ---------------------------------------------------------------- running the worker


async def until(done: Callable[[], bool], seconds: float, step: float = 0.002) -> None:
    """Poll `done` every `step` until true; TimeoutError after `seconds`."""
    async with asyncio.timeout(seconds):
        # A counter the worker bumps has no event to wait on; polling it costs next to nothing.
        while not done():  # noqa: ASYNC110
            await asyncio.sleep(step)


async def run_until(worker: Worker, target: int, seconds: float = 300) -> float:
    """Run `worker` until it has settled `target` items in all (TimeoutError after
    `seconds`); return the seconds taken."""
    stop = asyncio.Event()
    started = time.monotonic()
    task = asyncio.create_task(worker.run(stop))
    try:
        await until(lambda: worker.processed >= target, seconds)
    finally:
        elapsed = time.monotonic() - started
        stop.set()
        await task
    return elapsed


async def warm_pool(engine: sa.Engine, worker: Worker, pool: int, tag: str) -> None:
    """Sync the contacts the timed events refer to (not timed)."""
    accept_all(engine, worker.mapper, [pool_event(k, tag) for k in range(pool)])
    await run_until(worker, worker.processed + pool)


def queue_problems(engine: sa.Engine) -> list[str]:
    """Work still open, or dead letters: either means a change did not go through."""
    with engine.connect() as conn:
        open_ = conn.execute(
            sa.select(sa.func.count()).where(work_items.c.status.in_(["pending", "leased"]))
        ).scalar_one()
        dead = conn.execute(sa.select(sa.func.count()).select_from(dead_letters)).scalar_one()
    out = [f"{open_} work rows still open"] if open_ else []
    return out + ([f"{dead} dead letters"] if dead else [])


Written = list[tuple[float, int | None]]  # per GHL write: when, and the marker it carried


def written(ghl: InstantGHL) -> Written:
    """The writes of an in-process instant GHL, as (time, marker)."""
    return [(w.at, int(m[1]) if (m := MARKER.search(w.body)) else None) for w in ghl.writes]


def marker_problems(writes: Written, start: int, count: int) -> list[str]:
    """Each timed change must have reached GHL in exactly one write."""
    seen = Counter(marker for _, marker in writes if marker is not None)
    expected = set(range(start, start + count))
    missing = expected - set(seen)
    twice = [i for i, n in seen.items() if n > 1]
    extra = set(seen) - expected
    out = [f"{len(missing)} changes never reached GHL"] if missing else []
    out += [f"{len(twice)} changes written more than once"] if twice else []
    return out + ([f"{len(extra)} unexpected writes"] if extra else [])


def first_writes(writes: Written) -> dict[int, float]:
    """Marker → when GHL first saw a write carrying it."""
    out: dict[int, float] = {}
    for at, marker in writes:
        if marker is not None:
            out.setdefault(marker, at)
    return out


# ---------------------------------------------------------------- scenarios


async def worker_only(
    url: str, store: str, count: int, concurrency: int, *, limiter: bool, sandbox: bool = False
) -> Result:
    """Pre-load `count` deliveries, then time the worker draining them."""
    engine = create_engine(url)
    migrate(engine)
    ghl = InstantGHL()
    transport = sandbox_transport() if sandbox else ghl.transport()
    pacer = SqlRateLimiter(engine) if limiter else None
    client = ghl_client(transport, pacer)
    config = bench_config(concurrency)
    worker = Worker(engine, client, Mapper(config), config, limiter=pacer)
    tag, pool = uuid.uuid4().hex[:6], pool_size(count)
    async with client:
        await warm_pool(engine, worker, pool, tag)
        accept_all(engine, worker.mapper, [timed_event(i, pool, tag) for i in range(count)])
        cpu = time.process_time()
        seconds = await run_until(worker, worker.processed + count)
        cpu = time.process_time() - cpu
    name = "worker only, " + ("sandbox app (ASGI)" if sandbox else "instant GHL")
    name += ", SqlRateLimiter" if limiter else ", no limiter"
    result = Result(store, f"{name}, concurrency {concurrency}", count, seconds, cpu=cpu)
    checked = [] if sandbox else marker_problems(written(ghl), 0, count)
    result.problems = queue_problems(engine) + checked
    engine.dispose()
    return result


async def noop_worker(url: str, store: str, count: int, concurrency: int) -> Result:
    """The worker with a no-op `sync_event`: claim + complete alone (the queue's ceiling)."""

    async def nothing(_ctx: Any, _mapped: Any) -> list[Any]:
        return []

    engine = create_engine(url)
    migrate(engine)
    config = bench_config(concurrency)
    worker = Worker(engine, None, Mapper(config), config, sync_event=nothing)
    tag = uuid.uuid4().hex[:6]
    accept_all(engine, worker.mapper, [timed_event(i, 10**6, tag) for i in range(count)])
    cpu = time.process_time()
    seconds = await run_until(worker, count)
    cpu = time.process_time() - cpu
    name = f"worker, no-op sync, concurrency {concurrency}"
    result = Result(store, name, count, seconds, cpu=cpu)
    result.problems = queue_problems(engine)
    engine.dispose()
    return result


async def client_alone(count: int, concurrency: int) -> Result:
    """`GHLClient.request` against the instant GHL, `concurrency` at a time: calls/s."""
    ghl = InstantGHL()
    client = ghl_client(ghl.transport())
    queue = list(range(count))

    async def one() -> None:
        while queue:
            i = queue.pop()
            body = {"locationId": DEFAULT_LOCATION_ID, "email": f"x{i}@bench.example"}
            await client.request(
                "POST", "/contacts/upsert", key=DEFAULT_LOCATION_ID, version="2021-07-28", json=body
            )

    async with client:
        started, cpu = time.monotonic(), time.process_time()
        await asyncio.gather(*(one() for _ in range(concurrency)))
        seconds, cpu = time.monotonic() - started, time.process_time() - cpu
    name = f"GHL client alone (upsert), concurrency {concurrency}"
    return Result("-", name, count, seconds, "calls", cpu=cpu)


class StandIn:
    """The instant GHL as an HTTP server in another process (`bench/_instant_ghl.py`)."""

    def __init__(self, workdir: Path, *, refuses_duplicates: bool = False) -> None:
        self._port_file = workdir / f"standin-{uuid.uuid4().hex[:6]}.port"
        self._proc: asyncio.subprocess.Process | None = None
        self._flags = ["--refuses-duplicates"] if refuses_duplicates else []
        self.url = ""

    async def __aenter__(self) -> StandIn:
        script = str(Path(__file__).with_name("_instant_ghl.py"))
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable, script, str(self._port_file), *self._flags
        )
        await until(self._port_file.exists, 20, 0.02)
        await asyncio.sleep(0.3)  # the port is written just before uvicorn starts listening
        self.url = f"http://127.0.0.1:{self._port_file.read_text().strip()}"
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._proc is not None:
            self._proc.terminate()
            await self._proc.wait()

    async def writes(self) -> Written:
        """Every write the stand-in received so far, as (time, marker)."""
        async with httpx2.AsyncClient() as http:
            answer = await http.get(f"{self.url}/_bench/writes", timeout=60)
        return [(float(at), marker) for at, _method, _path, marker in answer.json()]


class InProcess:
    """The instant GHL behind an `httpx2.MockTransport` in this process."""

    def __init__(self, *, refuses_duplicates: bool = False) -> None:
        self.ghl = InstantGHL(refuses_duplicates=refuses_duplicates)

    async def writes(self) -> Written:
        return written(self.ghl)


@asynccontextmanager
async def serving(
    engine: sa.Engine,
    concurrency: int,
    *,
    standin: StandIn | None = None,
    refuses_duplicates: bool = False,
) -> AsyncIterator[tuple[str, Worker, StandIn | InProcess]]:
    """`ghlsync serve` in this process, built as `serve` builds it (`build_worker`: the
    location services, their tokens and gate, `SqlRateLimiter`; the app with the location
    directory; uvicorn with the guarded protocol and connection limits of `server:`), the
    receiver and the worker on one loop; the instant GHL behind the client (in this process,
    or `standin` over loopback HTTP). Yields (base URL, worker, the GHL)."""
    ghl: StandIn | InProcess = (
        standin if standin is not None else InProcess(refuses_duplicates=refuses_duplicates)
    )
    config = bench_config(concurrency)
    transport = None
    if isinstance(ghl, InProcess):
        transport = ghl.ghl.transport()
        base_url = GHL_URL
    else:
        base_url = ghl.url
    config = config.model_copy(update={"ghl": config.ghl.model_copy(update={"base_url": base_url})})
    mapper = Mapper(config)
    services = LocationServices.build(engine, config, mapper=mapper)
    worker = build_worker(engine, config, mapper, services=services, transport=transport)
    app = create_app(
        engine=engine,
        config=config,
        mapper=mapper,
        worker_state=worker,
        locations=services.directory,
        installer=services.installer,
    )
    limits = ConnectionLimits.from_settings(config.server).within_fd_limit()
    sock = bind_loopback()
    server = uvicorn.Server(
        uvicorn.Config(
            app, lifespan="on", log_level="warning", access_log=False, **uvicorn_settings(limits)
        )
    )
    settle_heap()  # as `ghlsync serve` does once it is built
    stop = asyncio.Event()
    serve_task = asyncio.create_task(server.serve(sockets=[sock]))
    worker_task = asyncio.create_task(worker.run(stop))
    try:
        await until(lambda: bool(server.started), 10, 0.01)
        host, port = sock.getsockname()[:2]
        yield f"http://{host}:{port}", worker, ghl
    finally:
        server.should_exit = True
        await serve_task
        stop.set()
        await worker_task
        await worker.client.aclose()
        sock.close()


async def load(url: str, out: Path, count: int, pool: int, tag: str, **how: Any) -> list[Any]:
    """Run the load generator in its own process; its rows [i, sent, answered, status]."""
    import json

    args = [sys.executable, str(Path(__file__).with_name("_engine_workload.py")), url, str(out)]
    args += ["--count", str(count), "--pool", str(pool), "--tag", tag]
    for key, value in how.items():
        args += [f"--{key}", str(value)]
    proc = await asyncio.create_subprocess_exec(*args)
    if await proc.wait() != 0:
        raise RuntimeError(f"the load generator exited with {proc.returncode}")
    rows: list[Any] = json.loads(await asyncio.to_thread(out.read_text))
    return rows


async def over_http(
    url: str,
    store: str,
    count: int,
    concurrency: int,
    workdir: Path,
    *,
    standin: bool = False,
    mix: str = "mixed",
    refuses_duplicates: bool = False,
    **how: Any,
) -> Result:
    """The pipeline over HTTP (flood when `how` has no rate, else paced); latency per change.

    `standin`: GHL is the stand-in server in another process, over loopback HTTP.
    `refuses_duplicates`: its locations refuse duplicate contacts, GHL's default (a new
    customer is one `POST /contacts/` with its tags); else their settings cannot be read
    and a new customer is an upsert and a tag call (the workload's documented shape)."""
    tag = uuid.uuid4().hex[:6]
    pool = pool_size(count, mix=mix)
    engine = create_engine(url)
    migrate(engine)
    async with contextlib.AsyncExitStack() as stack:
        other = (
            await stack.enter_async_context(StandIn(workdir, refuses_duplicates=refuses_duplicates))
            if standin
            else None
        )
        async with serving(
            engine, concurrency, standin=other, refuses_duplicates=refuses_duplicates
        ) as served:
            base, worker, ghl = served
            await _warm_running(worker, pool, tag)
            settled = worker.processed
            cpu = time.process_time()
            rows = await load(base, workdir / f"{tag}.json", count, pool, tag, mix=mix, **how)
            await until(lambda: worker.processed >= settled + count, 300)
            done, cpu = time.monotonic(), time.process_time() - cpu
        writes = await ghl.writes()
    result = _http_result(store, count, concurrency, rows, writes, done, how)
    if mix != "mixed":
        result.scenario += f", {'new customers' if mix == 'new' else 'updates'} only"
    if standin:
        result.scenario += ", GHL stand-in in another process"
    if refuses_duplicates:
        result.scenario += ", duplicates refused (GHL's default: one create call)"
    result.problems += queue_problems(engine)
    result.cpu = cpu
    engine.dispose()
    return result


async def _warm_running(worker: Worker, pool: int, tag: str) -> None:
    """Sync the pool with the worker already running (it wakes on the commits)."""
    target = worker.processed + pool
    accept_all(worker.engine, worker.mapper, [pool_event(k, tag) for k in range(pool)])
    await until(lambda: worker.processed >= target, 120, 0.01)


def _http_result(
    store: str,
    count: int,
    concurrency: int,
    rows: list[Any],
    writes: Written,
    done: float,
    how: dict[str, Any],
) -> Result:
    first_sent = min(r[1] for r in rows)
    seen = first_writes(writes)
    mode = f"{how['rate']:.0f} events/s" if how.get("rate") else "as fast as 50 connections go"
    result = Result(
        store,
        f"pipeline over HTTP, {mode}, concurrency {concurrency}",
        count,
        done - first_sent,
        latencies_ms=[(seen[i] - sent) * 1000 for i, sent, _a, _s in rows if i in seen],
        answer_ms=[(answered - sent) * 1000 for _i, sent, answered, _s in rows],
    )
    statuses = Counter(r[3] for r in rows)
    if set(statuses) != {202}:
        result.problems.append(f"answers {dict(statuses)}")
    result.problems += marker_problems(writes, 0, count)
    if how.get("rate"):
        span = max(r[1] for r in rows) - first_sent
        result.note = f"{(len(rows) - 1) / span:.1f}/s for {span:.1f} s"
    return result


# ---------------------------------------------------------------- the run and its report


@dataclass(frozen=True)
class Plan:
    """Sizes of one run (`--quick` shrinks them for a smoke run)."""

    count: int = 2000
    latency_seconds: float = 25.0
    rate: float = 100.0
    # None: what `ghlsync serve` runs with on the store (`worker.concurrency` is unset in
    # the preset: `Worker`'s default by store, `DEFAULT_CONCURRENCY`).
    concurrency: int | None = None
    wide: int = 32


async def run_store(store: str, plan: Plan, workdir: Path, only: str = "") -> list[Result]:
    """Every scenario on one store (`only="latency"`: that one), each on a fresh database."""
    concurrency = plan.concurrency or serve_concurrency(store)

    def latency(u: str) -> Awaitable[Result]:
        count = round(plan.rate * plan.latency_seconds)
        return over_http(u, store, count, concurrency, workdir, rate=plan.rate)

    wider = [plan.wide] if plan.wide != concurrency else []  # (32 is PostgreSQL's default)
    scenarios: list[Callable[[str], Awaitable[Result]]] = [
        lambda u: noop_worker(u, store, plan.count, concurrency),
        *(lambda u, w=w: noop_worker(u, store, plan.count, w) for w in wider),
        lambda u: worker_only(u, store, plan.count, concurrency, limiter=False),
        *(lambda u, w=w: worker_only(u, store, plan.count, w, limiter=False) for w in wider),
        lambda u: worker_only(u, store, plan.count, concurrency, limiter=True),
        lambda u: over_http(u, store, plan.count, concurrency, workdir),
        latency,
    ]
    if store == "sqlite":  # the transport comparison needs one store only
        scenarios.insert(
            5,
            lambda u: worker_only(u, store, plan.count, concurrency, limiter=False, sandbox=True),
        )
    # As `ghlsync serve` runs it against GHL in another process over loopback HTTP; per mix
    # (new customers only, updates only) both in-process and stand-in on SQLite.
    scenarios.append(lambda u: over_http(u, store, plan.count, concurrency, workdir, standin=True))
    for mix in ("new", "updates") if store == "sqlite" else ():
        for standin in (False, True):
            scenarios.append(
                functools.partial(
                    over_http,
                    store=store,
                    count=plan.count,
                    concurrency=concurrency,
                    workdir=workdir,
                    standin=standin,
                    mix=mix,
                )
            )
    # The same against locations at GHL's default duplicate rule (duplicates refused), where a
    # new customer is one create call with its tags instead of an upsert and a tag call.
    for mix in ("mixed", "new"):
        for standin in (False, True) if store == "sqlite" else (False,):
            scenarios.append(
                functools.partial(
                    over_http,
                    store=store,
                    count=plan.count,
                    concurrency=concurrency,
                    workdir=workdir,
                    standin=standin,
                    mix=mix,
                    refuses_duplicates=True,
                )
            )
    if only == "latency":  # the latency scenario alone (profiling, quick checks)
        scenarios = [latency]
    results = []
    for scenario in scenarios:
        with database(store, workdir) as url:
            result = await scenario(url)
        print(line(result), flush=True)
        results.append(result)
    return results


def serve_concurrency(store: str) -> int:
    """The items syncing at once in `ghlsync serve` on `store` with the preset's settings."""
    return DEFAULT_CONCURRENCY.get(store, SQLITE_CONCURRENCY)


def line(r: Result) -> str:
    """One result as a console line."""
    text = (
        f"{r.store:>10}  {r.scenario}: {r.rate:,.0f} {r.unit}/s ({r.count} in {r.seconds:.2f} s,"
        f" {r.cpu_ms:.2f} ms CPU each)"
    )
    if r.latencies_ms:
        text += f"; p50 {r.pct(50):.0f} ms, p95 {r.pct(95):.0f} ms, p99 {r.pct(99):.0f} ms"
    return text + (f"  PROBLEMS: {r.problems}" if r.problems else "")


def machine() -> str:
    """`N cores (nproc), <model>, Python x.y.z`."""
    model = platform.processor() or "unknown CPU"
    for row in Path("/proc/cpuinfo").read_text().splitlines():
        if row.startswith("model name"):
            model = row.split(":", 1)[1].strip()
            break
    return f"{os.cpu_count()} cores (nproc), {model}, Python {platform.python_version()}"


def _ms(value: float) -> str:
    return f"{value:,.0f} ms" if value == value else "–"


def _is_latency(r: Result) -> bool:
    return bool(r.latencies_ms) and "events/s" in r.scenario


def _checks(r: Result) -> str:
    return "ok" if not r.problems else "**" + "; ".join(r.problems) + "**"


def header(load_before: tuple[float, float, float]) -> str:
    """When, where, and how loaded the machine was."""
    loads = ", ".join(f"{x:.1f}" for x in load_before)
    return (
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine()}; receiver, worker and "
        "instant GHL in one process, the load generator in another; load average before the "
        f"run {loads} (other processes share the cores: compare runs with care)."
    )


def throughput_report(results: list[Result], load_before: tuple[float, float, float]) -> str:
    """The "Engine throughput" block: every rate, then the verdicts."""
    out = [
        header(load_before),
        "",
        "| store | scenario | changes | seconds | per second | CPU per change | checks |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for r in (r for r in results if not _is_latency(r)):
        out.append(
            f"| {r.store} | {r.scenario} | {r.count:,} {r.unit} | {r.seconds:.2f} "
            f"| {r.rate:,.0f} | {r.cpu_ms:.2f} ms | {_checks(r)} |"
        )
    chosen = [r for r in results if not _is_latency(r)]
    return "\n".join([*out, "", *verdicts(chosen)])


def latency_report(results: list[Result], load_before: tuple[float, float, float]) -> str:
    """The "Latency" block: percentiles per store, then the verdicts."""
    out = [
        header(load_before),
        "",
        "| store | sent | events | webhook → GHL write p50 | p95 | p99 | max "
        "| webhook answered p50 | p99 | CPU per event | checks |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    chosen = [r for r in results if _is_latency(r)]
    for r in chosen:
        out.append(
            f"| {r.store} | {r.note} | {r.count:,} | {_ms(r.pct(50))} "
            f"| {_ms(r.pct(95))} | {_ms(r.pct(99))} | {_ms(r.pct(100))} "
            f"| {_ms(r.pct(50, r.answer_ms))} | {_ms(r.pct(99, r.answer_ms))} "
            f"| {r.cpu_ms:.2f} ms | {_checks(r)} |"
        )
    return "\n".join([*out, "", *verdicts(chosen)])


def verdicts(results: list[Result]) -> list[str]:
    """Target met or missed, per store, for the figures the targets are judged on."""
    out = []
    for r in results:
        if r.scenario.startswith("worker only, instant GHL, no limiter") or (
            r.scenario.startswith("pipeline") and "events/s" not in r.scenario
        ):
            ok = "met" if r.rate >= TARGET_RATE else "MISSED"
            out.append(f"- {r.store}, {r.scenario}: {r.rate:,.0f} changes/s, target ≥ 1,000: {ok}")
        elif "events/s" in r.scenario:
            fast = r.pct(50) <= TARGET_P50_MS and r.pct(99) <= TARGET_P99_MS
            out.append(
                f"- {r.store}, latency at {r.scenario.split(', ')[1]}: p50 {_ms(r.pct(50))}, "
                f"p99 {_ms(r.pct(99))}, target p50 ≤ 50 ms and p99 ≤ 250 ms: "
                f"{'met' if fast else 'MISSED'}"
            )
    return out


SECTIONS = {"engine": "Engine throughput", "latency": "Latency"}


def write_section(marker: str, text: str) -> None:
    """Put `text` between the `marker` run markers of docs/benchmarks.md; the prose around
    them is kept, and a missing section is added at the end. Other sections are not touched."""
    begin, end = f"<!-- {marker}:run -->", f"<!-- /{marker}:run -->"
    existing = DOCS.read_text()
    block = f"{begin}\n{text}\n{end}"
    if begin in existing and end in existing:
        new = re.sub(
            re.escape(begin) + ".*?" + re.escape(end), lambda _: block, existing, flags=re.S
        )
    else:
        new = f"{existing.rstrip()}\n\n## {SECTIONS[marker]}\n\n{block}\n"
    DOCS.write_text(new)


async def main(args: argparse.Namespace) -> int:
    plan = Plan(count=600, latency_seconds=5.0) if args.quick else Plan()
    load_before = os.getloadavg()
    stores = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    results = [] if args.only else [await client_alone(plan.count * 3, serve_concurrency("sqlite"))]
    for r in results:
        print(line(r), flush=True)
    with tempfile.TemporaryDirectory(prefix="ghlsync-bench-") as tmp:
        for store in stores:
            results += await run_store(store, plan, Path(tmp), args.only)
    texts = {
        "engine": throughput_report(results, load_before),
        "latency": latency_report(results, load_before),
    }
    print("\n\n".join(texts.values()))
    if args.write and not args.only:
        for marker, text in texts.items():
            write_section(marker, text)
    return 1 if any(r.problems for r in results) else 0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    parser.add_argument(
        "--only", choices=["latency"], default="", help="that scenario alone (no --write)"
    )
    return parser.parse_args()


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
