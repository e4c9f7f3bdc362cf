"""`ghlsync serve` itself applies the connection limits: a real process under a low open-file
limit, flooded with connections that never finish their headers."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx2
import pytest

from ghlsync.server import bind_loopback
from tests._hardening_server_kit import LOCATION, SECRET, connect

pytestmark = pytest.mark.slow

PARTIAL_HEAD = b"POST /hooks/dripjobs/customer.created HTTP/1.1\r\nHost: x\r\n"
OPEN_FILES = 256
DEADLINE_SECONDS = 30.0


def _low_fd_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (OPEN_FILES, hard))


def _start(tmp_path: Path, port: int) -> subprocess.Popen[str]:
    config = tmp_path / "ghlsync.yaml"
    config.write_text(
        f"database_url: sqlite:///{tmp_path / 'serve.db'}\n"
        f"ghl: {{location_id: {LOCATION}}}\n"
        f"dripjobs: {{secret: {SECRET}}}\n"
        "server: {header_timeout: 0.5, max_connections: 1000}\n"
    )
    command = [sys.executable, "-c", "from ghlsync.cli import main; main()", "serve"]
    command += ["--no-worker", "--port", str(port), "--config", str(config)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("GHLSYNC_")}
    return subprocess.Popen(
        command,
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=_low_fd_limit,
    )


def _healthz(url: str, proc: subprocess.Popen[str]) -> int:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[0]
        try:
            return httpx2.get(f"{url}/healthz", timeout=DEADLINE_SECONDS).status_code
        except httpx2.TransportError:
            time.sleep(0.05)
    raise AssertionError("serve did not answer /healthz")


def test_serve_closes_slow_connections_and_fits_its_file_limit(tmp_path: Path) -> None:
    sock = bind_loopback()
    port = sock.getsockname()[1]
    sock.close()
    proc = _start(tmp_path, port)
    url = f"http://127.0.0.1:{port}"
    try:
        assert _healthz(url, proc) == 200
        slow = [connect(url, PARTIAL_HEAD, timeout=DEADLINE_SECONDS) for _ in range(150)]
        during = _healthz(url, proc)
        closed = [sock.recv(1) == b"" for sock in slow]
        for sock in slow:
            sock.close()
        after = _healthz(url, proc)
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=DEADLINE_SECONDS)

    assert (during, after) == (200, 200)
    assert all(closed)
    # 1000 connections cannot fit 256 open files: serve lowers the cap and says so, once.
    assert output.count(f"does not fit the open-file limit {OPEN_FILES}; using 192") == 1
    # 150 closures, one line: the log does not grow with the flood.
    assert output.count("did not send their headers within 0.5 s") == 1
    assert "Traceback" not in output
    assert proc.returncode == 0, output
