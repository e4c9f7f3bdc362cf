"""wrk side by side: `ghlsync serve` against the bare reference receiver, in one run.

Used by `bench/bench_ingest.py` (its default `--load wrk`). Each case starts both receivers on
fresh stores, warms them up, then alternates wrk rounds between them (reference, ghlsync,
reference, ...) so that the load other processes put on the shared cores falls on both alike.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

BENCH = Path(__file__).resolve().parent
LUA = BENCH / "wrk_ingest.lua"
REFERENCE = BENCH / "ingest_reference.py"
PATH = "/hooks/dripjobs/customer.updated"
MERGE_ENTITIES = 50  # the merge-heavy case: every delivery goes to one of 50 customers

MIXED_REPEATS = 30  # the mixed case: this percentage of deliveries go to an earlier customer

CASES = {"new": 0, "merge": MERGE_ENTITIES, "mixed": 0}
REPEATS = {"mixed": MIXED_REPEATS}
DEFAULT_CASES = ["new", "merge"]  # `--case both`: what docs/benchmarks.md's table has
CASE_TITLES = {
    "new": "every delivery a new customer",
    "merge": f"merge-heavy ({MERGE_ENTITIES} customers)",
    "mixed": f"new customers, {MIXED_REPEATS}% to an earlier one (a growing store)",
}


@dataclass
class Tally:
    """wrk's counts over the rounds of one receiver in one case."""

    requests: int = 0
    non2xx: int = 0
    errors: int = 0
    seconds: float = 0.0
    p50_ms: list[float] = field(default_factory=list)
    p99_ms: list[float] = field(default_factory=list)
    rows: int = 0  # inbox rows the store holds after the case
    cpu_seconds: float = 0.0  # the receiver process's CPU (user + system) during the rounds

    @property
    def cpu_us(self) -> float:
        """CPU microseconds of the receiver per accepted delivery: less noisy than the rate on
        a shared machine."""
        return self.cpu_seconds / self.ok * 1e6 if self.ok else 0.0

    @property
    def ok(self) -> int:
        return self.requests - self.non2xx

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def add(self, out: dict[str, float]) -> None:
        self.requests += int(out["requests"])
        self.non2xx += int(out["non2xx"])
        self.errors += int(out["connect"] + out["read"] + out["write"] + out["timeout"])
        self.seconds += out["duration_us"] / 1e6
        self.p50_ms.append(out["p50_us"] / 1e3)
        self.p99_ms.append(out["p99_us"] / 1e3)


@dataclass(frozen=True)
class WrkShape:
    threads: int = 2
    connections: int = 32
    seconds: float = 8.0
    rounds: int = 2
    warmup: float = 2.0
    parser: str = "httptools"  # the HTTP parser of both receivers: "httptools" or "h11"


def have_wrk() -> bool:
    return shutil.which("wrk") is not None


def run_wrk(port: int, secret: str, case: str, seconds: float, shape: WrkShape) -> dict[str, float]:
    """One wrk round; the JSON line `done()` of the Lua script prints."""
    env = dict(
        os.environ,
        INGEST_SECRET=secret,
        INGEST_ENTITIES=str(CASES[case]),
        INGEST_REPEATS=str(REPEATS.get(case, 0)),
        INGEST_RUN=uuid.uuid4().hex[:10],
    )
    cmd = [
        "wrk",
        f"-t{shape.threads}",
        f"-c{shape.connections}",
        f"-d{max(1, round(seconds))}s",
        "-s",
        str(LUA),
        f"http://127.0.0.1:{port}{PATH}",
    ]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        if line.startswith("WRK-JSON "):
            parsed: dict[str, float] = json.loads(line[len("WRK-JSON ") :])
            return parsed
    raise RuntimeError(f"wrk printed no summary:\n{out}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_port(port: int, proc: subprocess.Popen[bytes], *, path: str = "/healthz") -> None:
    """Until `path` answers (any status) or the process exits."""
    deadline = time.monotonic() + 30
    request = f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(request)
                if sock.recv(12).startswith(b"HTTP/1.1"):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError("the server did not start")


@contextmanager
def reference_server(folder: str, parser: str) -> Iterator[tuple[int, str, int]]:
    """The bare receiver on a fresh SQLite file, parsing HTTP with `parser`: (port, database
    URL, pid)."""
    port, path = free_port(), f"{folder}/reference.db"
    cmd = [sys.executable, str(REFERENCE), "--db", path, "--port", str(port), "--http", parser]
    proc = subprocess.Popen(cmd, cwd=tempfile.gettempdir())
    try:
        wait_port(port, proc, path="/")
        yield port, f"sqlite:///{path}", proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def cpu_seconds(pid: int) -> float:
    """User + system CPU of process `pid` (and its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def count_rows(url: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT count(*) FROM inbox")).scalar_one())
    finally:
        engine.dispose()


Server = tuple[int, str, str, int]  # port, secret, database URL, pid


def side_by_side(case: str, shape: WrkShape, servers: dict[str, Server]) -> dict[str, Tally]:
    """Alternate rounds over `servers` (name → port, secret, database URL, pid), one case."""
    for port, secret, _, _ in servers.values():
        run_wrk(port, secret, case, shape.warmup, shape)
    before = {name: count_rows(url) for name, (_, _, url, _) in servers.items()}
    tallies = {name: Tally() for name in servers}
    for _ in range(shape.rounds):
        for name, (port, secret, _, pid) in servers.items():
            cpu = cpu_seconds(pid)
            tallies[name].add(run_wrk(port, secret, case, shape.seconds, shape))
            tallies[name].cpu_seconds += cpu_seconds(pid) - cpu
    for name, (_, _, url, _) in servers.items():
        tallies[name].rows = count_rows(url) - before[name]
    return tallies
