"""Install/uninstall with real `ghlsync worker` processes on PostgreSQL: the receiver mints
B's token and creates its connection; two worker processes read both from the store and sync
A and B; after B's uninstall, fresh workers leave B's pending work alone while A flows on."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx2
import pytest
import sqlalchemy as sa
import yaml

import ghlsync.mapping
from ghlsync.engine.locations._rows import ConnectionRow, list_connections
from ghlsync.engine.locations._services import LocationServices
from ghlsync.ghl._crypto import TokenCipher, generate_key
from ghlsync.ghl._vault import TokenVault
from ghlsync.mapping import load_config
from ghlsync.sandbox import SandboxServer
from ghlsync.server import create_app, serve_in_thread
from ghlsync.store import create_engine, migrate
from ghlsync.store._tables_engine import work_items
from tests._locations_kit import connect_agency, sandbox_oauth
from tests._scale_kit import GHLSYNC

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
WAIT_SECONDS = 60.0  # a bound against hanging, not a timing assertion
SECRET = "default-secret-value"


@dataclass
class Agency:
    """Receiver in this process, workers in others, one PostgreSQL store, the sandbox."""

    engine: sa.Engine
    sandbox: SandboxServer
    http: httpx2.Client
    cipher: TokenCipher
    config_path: Path
    env: dict[str, str]
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start_workers(self, count: int) -> None:
        """Start `count` worker processes and wait until each runs (has logged "running"),
        so that a SIGTERM sent later meets the worker's own handler, not the default action
        of a process still importing (which ends it with -15: CI saw it on a slow machine)."""
        logs = []
        for _ in range(count):
            log = self.config_path.parent / f"worker{len(self.workers)}.log"
            with log.open("wb") as err:
                self.workers.append(
                    subprocess.Popen(
                        [GHLSYNC, "worker", "--config", str(self.config_path)],
                        env=self.env,
                        stdout=subprocess.DEVNULL,
                        stderr=err,
                    )
                )
            logs.append(log)
        for log in logs:
            deadline = time.monotonic() + WAIT_SECONDS
            while "running (SIGTERM/Ctrl-C drains)" not in log.read_text():
                assert time.monotonic() < deadline, f"worker never started:\n{log.read_text()}"
                time.sleep(0.05)

    def drain_workers(self) -> None:
        for proc in self.workers:
            proc.send_signal(signal.SIGTERM)
        for proc in self.workers:
            assert proc.wait(timeout=WAIT_SECONDS) == 0
        self.workers.clear()

    def send(self, connection: ConnectionRow | None, source: str) -> httpx2.Response:
        body = {"customer_id": source, "email": f"{source}@example.com"}
        if connection is None:
            path, secret = "/hooks/dripjobs/customer.created", SECRET
        else:
            path = f"/hooks/dripjobs/{connection.connection_id}/customer.created"
            secret = connection.secret.reveal()
        return self.http.post(path, json=body, headers={"Authorization": f"Bearer {secret}"})

    def emails(self, location: str) -> set[str]:
        with self.sandbox.state.lock:
            found = self.sandbox.state.locations.get(location)
            return {str(c.get("email")) for c in (found.contacts.values() if found else [])}

    def wait_synced(self, location: str, *sources: str) -> None:
        wanted = {f"{s}@example.com" for s in sources}
        deadline = time.monotonic() + WAIT_SECONDS
        while not wanted <= self.emails(location):
            assert time.monotonic() < deadline, f"{wanted} never reached {location}"
            time.sleep(0.05)


def _config_file(tmp: Path, url: str, sandbox: SandboxServer, public_key: str) -> Path:
    preset = Path(ghlsync.mapping.__file__).parent / "preset.yaml"
    config = {
        **yaml.safe_load(preset.read_text()),
        "database_url": url,
        "ghl": {
            "base_url": sandbox.url,
            "location_id": sandbox.location_id,
            "token": sandbox.token,
            "calendar_id": sandbox.calendar_id,
            "webhook_public_key": public_key,
            "app_id": "sandbox",
        },
        "dripjobs": {"secret": SECRET},
        "worker": {"concurrency": 4, "lease_seconds": 6, "poll_interval": 0.2},
    }
    path = tmp / "ghlsync.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _worker_env(key: str) -> dict[str, str]:
    env = {**os.environ, "GHLSYNC_SECRET_KEY": key}
    env |= {
        "GHLSYNC_GHL_CLIENT_ID": "sandbox-client",
        "GHLSYNC_GHL_CLIENT_SECRET": "sandbox-secret",
    }
    for name in ("GHLSYNC_DATABASE_URL", "GHLSYNC_GHL_TOKEN", "GHLSYNC_GHL_LOCATION_ID"):
        env.pop(name, None)
    return env


@pytest.fixture
def agency(postgres_url: str, tmp_path: Path) -> Iterator[Agency]:
    sandbox = SandboxServer().start()
    engine = create_engine(postgres_url)
    migrate(engine)
    key = generate_key()
    cipher = TokenCipher([key])
    oauth = sandbox_oauth(sandbox)
    vault = TokenVault(engine, cipher, oauth)
    asyncio.run(connect_agency(sandbox, vault))
    public_key = httpx2.get(f"{sandbox.url}/_sandbox/webhook-public-key").text
    config_path = _config_file(tmp_path, postgres_url, sandbox, public_key)
    config = load_config(config_path, environ={})
    services = LocationServices.build(engine, config, vault=vault, cipher=cipher, oauth=oauth)
    app = create_app(
        engine=engine, config=config, locations=services.directory, installer=services.installer
    )
    rig: Agency | None = None
    try:
        with serve_in_thread(app) as url, httpx2.Client(base_url=url) as http:
            httpx2.put(f"{sandbox.url}/_sandbox/webhooks", json={"url": f"{url}/hooks/ghl"})
            rig = Agency(engine, sandbox, http, cipher, config_path, _worker_env(key))
            yield rig
    finally:
        for proc in rig.workers if rig else []:
            proc.kill()
            proc.wait()
        engine.dispose()
        sandbox.stop()


def _admin(agency: Agency, path: str, location: str) -> int:
    answer = httpx2.post(f"{agency.sandbox.url}{path}", json={"locationId": location})
    return int(answer.json()["delivery"]["status"])


def _work(engine: sa.Engine, location: str, source: str) -> tuple[str, int]:
    cols = work_items.c
    query = sa.select(cols.status, cols.attempts).where(
        cols.location_id == location, cols.source_id == source
    )
    with engine.connect() as conn:
        row = conn.execute(query).one()
    return str(row.status), int(row.attempts)


def test_worker_processes_follow_installs_and_uninstalls(agency: Agency) -> None:
    agency.start_workers(2)
    assert agency.send(None, "a1").status_code == 202
    agency.wait_synced("loc_sandbox", "a1")

    assert _admin(agency, "/_sandbox/install", "loc_b") == 200
    [b] = list_connections(agency.engine, agency.cipher, "loc_b")
    codes = [agency.send(b, "b1").status_code, agency.send(None, "a2").status_code]
    codes.append(agency.send(b, "b2").status_code)
    assert codes == [202, 202, 202]
    agency.wait_synced("loc_b", "b1", "b2")  # with the token the receiver minted
    agency.wait_synced("loc_sandbox", "a2")

    agency.drain_workers()
    assert agency.send(b, "b3").status_code == 202
    since = len(agency.sandbox.state.requests)
    assert _admin(agency, "/_sandbox/uninstall", "loc_b") == 200
    assert agency.send(b, "b4").status_code == 401

    agency.start_workers(2)
    assert agency.send(None, "a3").status_code == 202
    agency.wait_synced("loc_sandbox", "a3")
    with agency.sandbox.state.lock:
        others = [
            e for e in agency.sandbox.state.requests[since:] if e["location"] != "loc_sandbox"
        ]
    assert others == []
    assert agency.emails("loc_b") == {"b1@example.com", "b2@example.com"}
    assert _work(agency.engine, "loc_b", "b3") == ("pending", 0)
