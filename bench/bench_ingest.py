"""Ingest benchmark: DripJobs deliveries accepted durably per second, over HTTP on loopback.

Default (`--load wrk`, issue 13): wrk (Debian's `wrk` package) with `bench/wrk_ingest.lua`
drives the real `ghlsync serve --no-worker` and the bare durable receiver of
`bench/ingest_reference.py` side by side in one run, in alternating rounds, on SQLite files:
every delivery a new customer, then the merge-heavy case (many deliveries to few customers).
Then `ghlsync serve` on PostgreSQL (when one answers), same cases. Deliveries authenticate
with `Authorization: Bearer <secret>` (what a Zap sends; wrk's Lua has no HMAC). After each
case the store must hold at least one inbox row per 2xx (a 2xx means committed).

`--load asyncio` is the older generator: raw HTTP/1.1 over asyncio streams, a fixed number of
requests, plus `accept()` timed alone.

    .venv/bin/python bench/bench_ingest.py [--seconds 8] [--rounds 2] [--write]
    .venv/bin/python bench/bench_ingest.py --load asyncio [--requests 20000] [--concurrency 50]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _ingest_wrk import (
    CASE_TITLES,
    CASES,
    DEFAULT_CASES,
    Tally,
    WrkShape,
    have_wrk,
    reference_server,
    side_by_side,
)

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-secret-0123456789abcdef"
LOCATION = "loc_bench"
PG_ADMIN = os.environ.get(
    "GHLSYNC_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@dataclass
class Result:
    backend: str
    requests: int
    accepted: int
    seconds: float
    inbox_rows: int
    client: str
    concurrency: int
    accept_us: float  # engine.accept() alone, per delivery, in batches like the server's

    @property
    def ceiling(self) -> float:
        """The rate accept() alone would allow, if nothing else took CPU."""
        return 1e6 / self.accept_us

    @property
    def rate(self) -> float:
        return self.accepted / self.seconds


def body_for(i: int) -> bytes:
    """A customer.updated delivery as a Zap would send it (a new delivery id each time)."""
    customer = i % 5000
    return json.dumps(
        {
            "delivery_id": f"bench-{uuid.uuid4().hex}",
            "Customer ID": f"cust-{customer}",
            "First Name": "Ava",
            "Last Name": f"Reyes{customer}",
            "Email": f"ava{customer}@example.com",
            "Phone": "(512) 555-0100",
            "Address": "1 Main St",
            "City": "Austin",
            "State": "TX",
            "Zip": "78701",
            "Lead Source": "Google",
            "updated_at": 1_800_000_000 + i,
        }
    ).encode()


def request_bytes(host: str, port: int, body: bytes) -> bytes:
    head = (
        f"POST /hooks/dripjobs/customer.updated HTTP/1.1\r\n"
        f"Host: {host}:{port}\r\n"
        f"Authorization: Bearer {SECRET}\r\n"
        f"Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _raw_connection(
    host: str, port: int, queue: list[bytes], statuses: dict[int, int]
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while queue:
            writer.write(queue.pop())
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            statuses[status] = statuses.get(status, 0) + 1
    finally:
        writer.close()


async def _httpx_connection(
    client: object, url: str, bodies: list[bytes], statuses: dict[int, int]
) -> None:
    headers = {"Authorization": f"Bearer {SECRET}", "Content-Type": "application/json"}
    while bodies:
        response = await client.post(url, content=bodies.pop(), headers=headers)  # type: ignore[attr-defined]
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1


async def drive(
    host: str, port: int, n: int, concurrency: int, client: str
) -> tuple[dict[int, int], float]:
    """Send `n` deliveries over `concurrency` connections; (status counts, seconds)."""
    bodies = [body_for(i) for i in range(n)]
    statuses: dict[int, int] = {}
    if client == "raw":
        queue = [request_bytes(host, port, b) for b in bodies]
        started = time.perf_counter()
        await asyncio.gather(
            *(_raw_connection(host, port, queue, statuses) for _ in range(concurrency))
        )
        return statuses, time.perf_counter() - started
    import httpx2

    limits = httpx2.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx2.AsyncClient(limits=limits) as http:
        url = f"http://{host}:{port}/hooks/dripjobs/customer.updated"
        started = time.perf_counter()
        await asyncio.gather(
            *(_httpx_connection(http, url, bodies, statuses) for _ in range(concurrency))
        )
        return statuses, time.perf_counter() - started


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def running_server(
    database_url: str, port: int, parser: str = "httptools"
) -> Iterator[subprocess.Popen[bytes]]:
    """`ghlsync serve --no-worker` in a subprocess, until the block ends (SIGTERM).

    `parser="h11"`: httptools is made unimportable in it, so serve falls back to h11."""
    env = dict(
        os.environ,
        GHLSYNC_DATABASE_URL=database_url,
        GHLSYNC_DRIPJOBS_SECRET=SECRET,
        GHLSYNC_GHL_LOCATION_ID=LOCATION,
    )
    env.pop("GHLSYNC_CONFIG", None)
    block = "import sys; sys.modules['httptools'] = None; " if parser == "h11" else ""
    cmd = [
        sys.executable,
        "-c",
        f"{block}from ghlsync.cli import main; main()",
        "serve",
        "--no-worker",
        "--port",
        str(port),
    ]
    proc = subprocess.Popen(cmd, env=env, cwd=tempfile.gettempdir())
    try:
        _wait_healthy(port, proc)
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _wait_healthy(port: int, proc: subprocess.Popen[bytes]) -> None:
    import httpx2

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}")
        try:
            if httpx2.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                return
        except httpx2.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError("the server did not become healthy")


def inbox_rows(database_url: str) -> int:
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT count(*) FROM inbox")).scalar_one())
    finally:
        engine.dispose()


@contextmanager
def database(backend: str) -> Iterator[str | None]:
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            yield f"sqlite:///{folder}/bench.db"
        return
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    name = f"ghlsync_bench_{uuid.uuid4().hex[:8]}"
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        print(f"postgresql: skipped ({exc.__class__.__name__})")
        yield None
        return
    try:
        yield sa.make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def run(backend: str, n: int, concurrency: int, client: str) -> Result | None:
    with database(backend) as url:
        if url is None:
            return None
        port = free_port()
        with running_server(url, port):
            asyncio.run(drive("127.0.0.1", port, min(500, n), concurrency, client))  # warm-up
            before = inbox_rows(url)
            statuses, seconds = asyncio.run(drive("127.0.0.1", port, n, concurrency, client))
            rows = inbox_rows(url) - before
            accept_us = accept_cost(url, min(n, 5000), concurrency)
        accepted = statuses.get(202, 0)
        if set(statuses) != {202}:
            print(f"{backend}: unexpected answers {statuses}", file=sys.stderr)
        return Result(backend, n, accepted, seconds, rows, client, concurrency, accept_us)


def accept_cost(database_url: str, n: int, batch: int) -> float:
    """Microseconds per delivery of `ghlsync.engine.accept` alone: no HTTP, same batching."""
    from ghlsync.dripjobs import fold_keys
    from ghlsync.engine import Delivery, accept
    from ghlsync.store import begin_immediate, create_engine

    deliveries = []
    for i in range(n):
        payload = fold_keys(json.loads(body_for(i)))
        deliveries.append(
            Delivery(
                connection_id="default",
                location_id=LOCATION,
                event="customer.updated",
                delivery_id=str(payload["delivery_id"]),
                payload=payload,
                entity_type="contact",
                source_id=str(payload["customer_id"]),
                source_updated_at=float(payload["updated_at"]),
                received_at=time.time(),
                action="upsert",
            )
        )
    engine = create_engine(database_url)
    try:
        started = time.perf_counter()
        for start in range(0, n, batch):
            with begin_immediate(engine) as conn:
                for delivery in deliveries[start : start + batch]:
                    accept(conn, delivery)
        return (time.perf_counter() - started) / n * 1e6
    finally:
        engine.dispose()


def machine() -> str:
    model = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores (nproc), {model}, Python {platform.python_version()}"


def report(results: list[Result]) -> str:
    lines = [
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine()}; "
        "server and load generator on the same machine; load average before the run "
        f"{LOAD_BEFORE[0]:.1f} (other processes share the cores: compare runs with care).",
        "",
        "| store | deliveries | concurrency | client | accepted/s | 202s | inbox rows "
        "| accept() alone | its ceiling |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.backend} | {r.requests} | {r.concurrency} | {r.client} | {r.rate:,.0f} "
            f"| {r.accepted} | {r.inbox_rows} | {r.accept_us:,.0f} µs | {r.ceiling:,.0f}/s |"
        )
    return "\n".join(lines)


BEGIN, END = "<!-- ingest:run -->", "<!-- /ingest:run -->"


def write_section(text: str) -> None:
    """Put `text` between the run markers of docs/benchmarks.md's "Ingest" section.

    The prose around the markers (the analysis) is kept; the section and the markers are
    added when missing. Other sections are never touched.
    """
    path = ROOT / "docs" / "benchmarks.md"
    existing = path.read_text() if path.exists() else "# Benchmarks\n"
    block = f"{BEGIN}\n{text}\n{END}"
    if BEGIN in existing and END in existing:
        head, _, rest = existing.partition(BEGIN)
        _, _, tail = rest.partition(END)
        path.write_text(head + block + tail)
        return
    section = f"\n## Ingest\n\n`bench/bench_ingest.py --write`\n\n{block}\n"
    path.write_text(existing.rstrip("\n") + "\n" + section)


LOAD_BEFORE = os.getloadavg()

WRK_BEGIN, WRK_END = "<!-- ingest:wrk -->", "<!-- /ingest:wrk -->"

Row = tuple[str, str, str, Tally, float | None]  # case, receiver, store, tally, ratio


def wrk_run(shape: WrkShape, backends: list[str], cases: list[str]) -> list[Row]:
    """Every case: reference vs ghlsync on SQLite side by side, then ghlsync on PostgreSQL."""
    rows: list[Row] = []
    for case in cases:
        if "sqlite" in backends:
            rows.extend(_sqlite_case(case, shape))
        if "postgresql" in backends:
            rows.extend(_postgres_case(case, shape))
    return rows


def _sqlite_case(case: str, shape: WrkShape) -> list[Row]:
    with (
        database("sqlite") as url,
        tempfile.TemporaryDirectory() as folder,
        reference_server(folder, shape.parser) as (ref_port, ref_url, ref_pid),
    ):
        assert url is not None
        port = free_port()
        with running_server(url, port, shape.parser) as proc:
            servers = {
                "reference": (ref_port, SECRET, ref_url, ref_pid),
                "ghlsync serve": (port, SECRET, url, proc.pid),
            }
            tallies = side_by_side(case, shape, servers)
    ref, ours = tallies["reference"], tallies["ghlsync serve"]
    _print_case(case, "sqlite", tallies)
    return [
        (case, "reference (bench/ingest_reference.py)", "sqlite", ref, None),
        (case, "ghlsync serve --no-worker", "sqlite", ours, ours.rate / ref.rate),
    ]


def _postgres_case(case: str, shape: WrkShape) -> list[Row]:
    with database("postgresql") as url:
        if url is None:
            return []
        port = free_port()
        with running_server(url, port, shape.parser) as proc:
            servers = {"ghlsync serve": (port, SECRET, url, proc.pid)}
            tallies = side_by_side(case, shape, servers)
    _print_case(case, "postgresql", tallies)
    return [(case, "ghlsync serve --no-worker", "postgresql", tallies["ghlsync serve"], None)]


def _print_case(case: str, store: str, tallies: dict[str, Tally]) -> None:
    for name, t in tallies.items():
        print(
            f"{case:6} {store:10} {name:14} {t.rate:8,.0f}/s  2xx {t.ok}  non-2xx {t.non2xx}  "
            f"socket errors {t.errors}  inbox rows {t.rows}  CPU {t.cpu_us:,.0f} µs/delivery",
            flush=True,
        )
        if t.rows < t.ok:
            print(f"  LOST: {t.ok} answered 2xx but only {t.rows} inbox rows", file=sys.stderr)


def wrk_report(rows: list[Row], shape: WrkShape) -> str:
    lines = [
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine()}; wrk "
        f"{shape.threads} threads, {shape.connections} connections, {shape.rounds} alternating "
        f"rounds of {shape.seconds:g} s per receiver and case, on the same machine; HTTP "
        f"parser {shape.parser} in both receivers; load "
        f"average before the run {LOAD_BEFORE[0]:.1f}, after {os.getloadavg()[0]:.1f}.",
        "",
        "| case | receiver | store | deliveries/s (2xx) | ÷ reference | CPU per delivery "
        "| 2xx | non-2xx | inbox rows | p50 | p99 |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for case, receiver, store, t, ratio in rows:
        shown = "" if ratio is None else f"{ratio:.2f}"
        p50 = max(t.p50_ms) if t.p50_ms else 0.0
        p99 = max(t.p99_ms) if t.p99_ms else 0.0
        lines.append(
            f"| {CASE_TITLES[case]} | {receiver} | {store} | {t.rate:,.0f} | {shown} "
            f"| {t.cpu_us:,.0f} µs | {t.ok} "
            f"| {t.non2xx} | {t.rows} | {p50:.1f} ms | {p99:.1f} ms |"
        )
    return "\n".join(lines)


def write_block(begin: str, end: str, text: str) -> None:
    """Replace the text between `begin` and `end` in docs/benchmarks.md (they must exist)."""
    path = ROOT / "docs" / "benchmarks.md"
    existing = path.read_text()
    if begin not in existing or end not in existing:
        raise SystemExit(f"docs/benchmarks.md lacks the markers {begin} {end}")
    head, _, rest = existing.partition(begin)
    _, _, tail = rest.partition(end)
    path.write_text(f"{head}{begin}\n{text}\n{end}{tail}")


def main() -> None:
    from ghlsync.server.guard._settings import http_parser

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--load", choices=["wrk", "asyncio"], default="wrk")
    parser.add_argument("--seconds", type=float, default=8.0, help="wrk: per round")
    parser.add_argument("--rounds", type=int, default=2, help="wrk: rounds per receiver")
    parser.add_argument("--connections", type=int, default=32, help="wrk")
    parser.add_argument("--threads", type=int, default=2, help="wrk")
    parser.add_argument(
        "--case", choices=[*CASES, "both"], default="both", help="wrk (both: new and merge)"
    )
    parser.add_argument("--requests", type=int, default=20_000, help="asyncio")
    parser.add_argument("--concurrency", type=int, default=50, help="asyncio")
    parser.add_argument("--client", choices=["raw", "httpx2"], default="raw", help="asyncio")
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument(
        "--parser",
        choices=["httptools", "h11"],
        default=http_parser(),
        help="wrk: the HTTP parser of both receivers (default: the one ghlsync serve uses)",
    )
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    if args.load == "wrk":
        if not have_wrk():
            raise SystemExit("wrk is not installed (Debian/Ubuntu: apt-get install wrk)")
        shape = WrkShape(
            args.threads, args.connections, args.seconds, args.rounds, parser=args.parser
        )
        cases = DEFAULT_CASES if args.case == "both" else [args.case]
        text = wrk_report(wrk_run(shape, backends, cases), shape)
        print(text)
        if args.write:
            write_block(WRK_BEGIN, WRK_END, text)
        return
    results = []
    for backend in backends:
        result = run(backend, args.requests, args.concurrency, args.client)
        if result is not None:
            print(
                f"{backend}: {result.rate:,.0f} deliveries/s durable "
                f"({result.accepted} accepted in {result.seconds:.2f} s, "
                f"{result.inbox_rows} inbox rows; accept() alone {result.accept_us:.0f} µs)"
            )
            results.append(result)
    print(report(results))
    if args.write and results:
        write_section(report(results))


if __name__ == "__main__":
    main()
