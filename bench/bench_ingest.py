"""Ingest benchmark: DripJobs deliveries accepted durably per second, over HTTP on loopback.

Starts the real `ghlsync serve --no-worker` in a subprocess on SQLite (a file) and on
PostgreSQL (when one answers), drives it with ~50 concurrent keep-alive connections, counts
202 answers, then checks the inbox holds exactly that many rows (a 202 means committed).

The load generator speaks HTTP/1.1 over raw asyncio streams rather than through httpx2: on a
2-core machine a full HTTP client costs the generator more CPU than the server under test
spends, and it would measure itself. Use `--client httpx2` to compare.

    .venv/bin/python bench/bench_ingest.py [--requests 20000] [--concurrency 50] [--write]
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
def running_server(database_url: str, port: int) -> Iterator[subprocess.Popen[bytes]]:
    """`ghlsync serve --no-worker` in a subprocess, until the block ends (SIGTERM)."""
    env = dict(
        os.environ,
        GHLSYNC_DATABASE_URL=database_url,
        GHLSYNC_DRIPJOBS_SECRET=SECRET,
        GHLSYNC_GHL_LOCATION_ID=LOCATION,
    )
    env.pop("GHLSYNC_CONFIG", None)
    cmd = [
        sys.executable,
        "-c",
        "from ghlsync.cli import main; main()",
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--client", choices=["raw", "httpx2"], default="raw")
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
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
