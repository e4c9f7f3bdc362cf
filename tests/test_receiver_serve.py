"""`ghlsync serve` as users run it: a real process, real HTTP, a signal to stop it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
import sqlalchemy as sa

from ghlsync.sandbox import running_sandbox
from ghlsync.server import bind_loopback

pytestmark = pytest.mark.slow

SECRET = "serve-secret-0123456789"
BEARER = {"Authorization": f"Bearer {SECRET}"}
DEADLINE_SECONDS = 30.0


def free_port() -> int:
    sock = bind_loopback()
    port: int = sock.getsockname()[1]
    sock.close()
    return port


def serve(*args: str, env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    command = [sys.executable, "-c", "from ghlsync.cli import main; main()", "serve", *args]
    environ = {k: v for k, v in os.environ.items() if not k.startswith("GHLSYNC_")} | env
    return subprocess.Popen(
        command, env=environ, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def wait_for(check: Callable[[], Any], proc: subprocess.Popen[str]) -> Any:
    """Poll `check` until it returns something truthy (the process must stay up meanwhile)."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[0]
        try:
            found = check()
        except httpx2.TransportError:
            found = None
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError("condition not reached before the deadline")


def stop(proc: subprocess.Popen[str]) -> tuple[int, str]:
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=DEADLINE_SECONDS)
    return proc.returncode, output


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Callable[..., tuple[subprocess.Popen[str], str]]]:
    started: list[subprocess.Popen[str]] = []

    def start(*args: str, **env: str) -> tuple[subprocess.Popen[str], str]:
        port = free_port()
        proc = serve(*args, "--port", str(port), env=env, cwd=tmp_path)
        started.append(proc)
        return proc, f"http://127.0.0.1:{port}"

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def count(url: str, table: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())
    finally:
        engine.dispose()


def test_serve_receives_then_stops_cleanly_on_sigterm(running: Any, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'serve.db'}"
    proc, url = running(
        "--no-worker",
        GHLSYNC_DATABASE_URL=db,
        GHLSYNC_DRIPJOBS_SECRET=SECRET,
        GHLSYNC_GHL_LOCATION_ID="loc_serve",
    )
    wait_for(lambda: httpx2.get(f"{url}/healthz").status_code == 200, proc)
    response = httpx2.post(
        f"{url}/hooks/dripjobs/customer.created",
        data={"Customer ID": "C-1", "First Name": "Ava"},
        headers=BEARER,
    )
    assert response.status_code == 202
    code, output = stop(proc)
    assert code == 0, output
    assert "Application shutdown complete" in output
    assert count(db, "inbox") == 1


def test_serve_with_worker_syncs_to_ghl(running: Any, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'serve.db'}"
    with running_sandbox() as sandbox:
        proc, url = running(
            GHLSYNC_DATABASE_URL=db,
            GHLSYNC_DRIPJOBS_SECRET=SECRET,
            GHLSYNC_GHL_BASE_URL=sandbox.url,
            GHLSYNC_GHL_LOCATION_ID=sandbox.location_id,
            GHLSYNC_GHL_TOKEN=sandbox.token,
            GHLSYNC_GHL_CALENDAR_ID=sandbox.calendar_id,
        )
        wait_for(lambda: httpx2.get(f"{url}/healthz").status_code == 200, proc)
        body = {"customer_id": "C-7", "first_name": "Ava", "email": "ava7@example.com"}
        sent = httpx2.post(f"{url}/hooks/dripjobs/customer.created", json=body, headers=BEARER)
        assert sent.status_code == 202

        def synced() -> bool:
            report = httpx2.get(f"{url}/healthz").json()
            return bool(report["queue"]["done"] == 1 and report["worker"]["alive"])

        wait_for(synced, proc)
        calls = httpx2.get(f"{sandbox.url}/_sandbox/requests").json()
        assert any(c["path"].startswith("/contacts") and c["method"] == "POST" for c in calls)
        code, output = stop(proc)
    assert code == 0, output


def test_serve_without_ghl_token_says_what_to_set(tmp_path: Path) -> None:
    proc = serve(
        "--port",
        str(free_port()),
        env={
            "GHLSYNC_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}",
            "GHLSYNC_DRIPJOBS_SECRET": SECRET,
            "GHLSYNC_GHL_LOCATION_ID": "loc_serve",
        },
        cwd=tmp_path,
    )
    output, _ = proc.communicate(timeout=DEADLINE_SECONDS)
    assert proc.returncode == 2
    assert "GHLSYNC_GHL_TOKEN" in output
    assert "--no-worker" in output


def test_serve_with_an_unreachable_store_says_so_without_the_password(tmp_path: Path) -> None:
    proc = serve(
        "--no-worker",
        env={"GHLSYNC_DATABASE_URL": "postgresql+psycopg://u:hunter2@127.0.0.1:1/x"},
        cwd=tmp_path,
    )
    output, _ = proc.communicate(timeout=DEADLINE_SECONDS)
    assert proc.returncode == 2
    assert "cannot open the store at postgresql+psycopg://u:***@127.0.0.1:1/x" in output
    assert "hunter2" not in output
