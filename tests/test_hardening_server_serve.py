"""`ghlsync serve` itself applies the connection limits: a real process under a low open-file
limit, flooded with connections that never finish their headers."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2
import pytest

from ghlsync.server import bind_loopback
from tests._hardening_server_kit import LOCATION, SECRET, connect, read_all

pytestmark = pytest.mark.slow

PARTIAL_HEAD = b"POST /hooks/dripjobs/customer.created HTTP/1.1\r\nHost: x\r\n"
OPEN_FILES = 256
DEADLINE_SECONDS = 30.0


def _low_fd_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (OPEN_FILES, hard))


@contextmanager
def _serve(tmp_path: Path, server: str, output: list[str]) -> Iterator[str]:
    """`ghlsync serve --no-worker` under a 256-file limit with `server: {...}`; yields its URL
    and leaves what it printed in `output` once it stopped (SIGTERM, exit 0)."""
    sock = bind_loopback()
    port = sock.getsockname()[1]
    sock.close()
    config = tmp_path / "ghlsync.yaml"
    config.write_text(
        f"database_url: sqlite:///{tmp_path / 'serve.db'}\n"
        f"ghl: {{location_id: {LOCATION}}}\n"
        f"dripjobs: {{secret: {SECRET}}}\n"
        f"server: {{{server}}}\n"
    )
    config.chmod(0o600)
    command = [sys.executable, "-c", "from ghlsync.cli import main; main()", "serve"]
    command += ["--no-worker", "--port", str(port), "--config", str(config)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("GHLSYNC_")}
    proc = subprocess.Popen(
        command,
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=_low_fd_limit,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        assert _healthz(url, proc) == 200
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        printed, _ = proc.communicate(timeout=DEADLINE_SECONDS)
        output.append(printed)
    assert proc.returncode == 0, printed


def _healthz(url: str, proc: subprocess.Popen[str] | None = None) -> int:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        assert proc is None or proc.poll() is None, proc and proc.communicate()[0]
        try:
            return httpx2.get(f"{url}/healthz", timeout=DEADLINE_SECONDS).status_code
        except httpx2.TransportError:
            time.sleep(0.05)
    raise AssertionError("serve did not answer /healthz")


def test_serve_closes_slow_connections_and_fits_its_file_limit(tmp_path: Path) -> None:
    output: list[str] = []
    with _serve(tmp_path, "header_timeout: 0.5, max_connections: 1000", output) as url:
        slow = [connect(url, PARTIAL_HEAD, timeout=DEADLINE_SECONDS) for _ in range(30)]
        during = _healthz(url)
        closed = [read_all(sock) for sock in slow]
        after = _healthz(url)
    printed = output[0]

    assert (during, after) == (200, 200)
    assert closed == [b""] * len(slow)  # closed by the server after the header bound
    # 1000 connections (and a burst being accepted) cannot fit 256 open files: serve lowers
    # the cap and says so, once.
    assert printed.count(f"does not fit the open-file limit {OPEN_FILES}; using 160") == 1
    # 30 closures, one line: the log does not grow with the flood.
    assert printed.count("did not send their headers within 0.5 s") == 1
    assert "Traceback" not in printed and "cannot accept" not in printed


def test_serve_past_max_connections_answers_503_and_recovers(tmp_path: Path) -> None:
    output: list[str] = []
    with _serve(tmp_path, "header_timeout: 2, max_connections: 40", output) as url:
        flood = [connect(url, PARTIAL_HEAD, timeout=DEADLINE_SECONDS) for _ in range(100)]
        answers = [read_all(sock) for sock in flood]
        after = _healthz(url)
    printed = output[0]

    refused = [answer for answer in answers if b'"error":"overloaded"' in answer]
    assert refused and all(answer in (b"", refused[0]) for answer in answers)
    assert refused[0].startswith(b"HTTP/1.1 503 ")
    assert after == 200  # the slow ones reached the header bound and freed their slots
    assert printed.count("40 connections are open (server.max_connections)") == 1
    assert "Traceback" not in printed and "cannot accept" not in printed
