"""Issue 12 §3 end to end: on a fresh machine, `init --sandbox URL`, then a real `ghlsync
serve` runs the sandbox environment (its own store, its GHL) and syncs a Zap's delivery there,
leaving the production environment's store untouched."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx2
import yaml

from ghlsync.sandbox import SandboxServer
from ghlsync.server import bind_loopback

WAIT_SECONDS = 60.0  # a bound against hanging, not a timing assertion


def _port() -> int:
    sock = bind_loopback()
    port: int = sock.getsockname()[1]
    sock.close()
    return port


def _ghlsync(*args: str, cwd: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GHLSYNC_")}
    return subprocess.Popen(
        [sys.executable, "-c", "from ghlsync.cli import main; main()", *args],
        cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _until(check: object, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[1]
        try:
            if callable(check) and check():
                return
        except httpx2.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("serve never got there")


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=WAIT_SECONDS)
    return err


def test_serve_runs_the_sandbox_environment_of_a_fresh_init(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    init = _ghlsync("init", "--sandbox", sandbox.url, cwd=tmp_path)
    init.communicate(timeout=WAIT_SECONDS)
    assert init.returncode == 0
    secret = yaml.safe_load((tmp_path / "ghlsync.yaml").read_text())["dripjobs"]["secret"]
    port = _port()
    proc = _ghlsync("serve", "--port", str(port), cwd=tmp_path)
    url = f"http://127.0.0.1:{port}"
    try:
        _until(lambda: httpx2.get(f"{url}/healthz").status_code == 200, proc)
        answer = httpx2.post(
            f"{url}/hooks/dripjobs/customer.created",
            json={"customer_id": "c-env", "first_name": "Eve", "email": "eve@example.com"},
            headers={"authorization": f"Bearer {secret}"},
        )
        assert answer.status_code == 202, answer.text
        location = sandbox.state.location(sandbox.location_id)
        assert location is not None
        _until(
            lambda: any(c.get("email") == "eve@example.com" for c in location.contacts.values()),
            proc,
        )
    finally:
        err = _stop(proc)

    assert f"ghlsync serve: environment sandbox (GHL at {sandbox.url})" in err
    assert (tmp_path / "ghlsync-sandbox.db").exists()
    assert not (tmp_path / "ghlsync.db").exists()  # production's store is untouched
