"""Issue 12 §2: every log line of a sync carries location, event, entity and delivery id;
`ghlsync worker --metrics-port` shows the worker's own counters.

A real `ghlsync worker --log-format json --log-level debug` process syncs one accepted
delivery (and one that dead-letters) against the sandbox over loopback; its JSON lines are read
back. The GHL client's per-call lines and the worker's dead-letter line know nothing of the
item: the fields come from the context the worker binds around it. Before it stops, its
`/metrics` is scraped (a fresh process: the counts are absolute).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx2

from ghlsync.engine import Delivery
from ghlsync.ghl._crypto import generate_key
from ghlsync.sandbox import SandboxServer
from ghlsync.store import create_engine, migrate
from tests._engine_kit import send
from tests._metrics_kit import parse, total, value

GHLSYNC = str(Path(sys.executable).parent / "ghlsync")
ADMIN = "admin-token-0123456789abcdef"


def _delivery(location: str, customer: str, delivery_id: str, email: str) -> Delivery:
    payload = {"customer_id": customer, "first_name": "Ava", "email": email}
    return Delivery(
        connection_id="default",
        location_id=location,
        event="customer.created",
        delivery_id=delivery_id,
        payload=payload | {"delivery_id": delivery_id},
        entity_type="contact",
        source_id=customer,
        source_updated_at=None,
        received_at=time.time(),
    )


def _scrape(log: Path) -> dict[str, Any]:
    [url] = re.findall(r"worker metrics at (\S+)\"", log.read_text())
    refused = httpx2.get(url)
    answer = httpx2.get(url, headers={"Authorization": f"Bearer {ADMIN}"})
    return {"refused": refused.status_code, "status": answer.status_code, "text": answer.text}


def _run_worker(
    tmp_path: Path, sandbox: SandboxServer, scraped: dict[str, Any]
) -> list[dict[str, Any]]:
    config = tmp_path / "ghlsync.yaml"
    config.write_text(
        f"database_url: sqlite:///{tmp_path / 'store.db'}\n"
        f"ghl: {{location_id: {sandbox.location_id}, token: {sandbox.token}, "
        f"base_url: '{sandbox.url}'}}\n"
        f"server: {{admin_token: {ADMIN}}}\n"
    )
    config.chmod(0o600)
    env = {**os.environ, "GHLSYNC_SECRET_KEY": generate_key(), "GHLSYNC_DATABASE_URL": ""}
    log = tmp_path / "worker.log"
    command = [GHLSYNC, "worker", "--config", str(config), "--log-format", "json"]
    command += ["--metrics-port", "0"]
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [*command, "--log-level", "debug"], env=env, stdout=subprocess.DEVNULL, stderr=err
        )
    try:
        _wait_for(log, "dead letter:")
        _wait_for(log, "-> 201")
        _wait_for(log, "worker metrics at ")
        scraped.update(_scrape(log))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    return [json.loads(line) for line in log.read_text().splitlines()]


def _wait_for(log: Path, text: str, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds  # a bound against hanging, not a timing assertion
    while time.monotonic() < deadline:
        if text in log.read_text():
            return
        time.sleep(0.05)
    raise AssertionError(f"never logged {text!r}:\n{log.read_text()}")


def test_sync_log_lines_carry_location_event_entity_and_delivery_id(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'store.db'}")
    migrate(engine)
    loc = sandbox.location_id
    send(
        engine,
        _delivery(loc, "C-1", "dlv-1", "ava@example.com"),
        _delivery(loc, "C-2", "dlv-2", "not-an-email"),
    )
    engine.dispose()

    scraped: dict[str, Any] = {}
    records = _run_worker(tmp_path, sandbox, scraped)

    calls = [r for r in records if r["logger"] == "ghlsync.ghl" and "-> 20" in r["event"]]
    assert calls, records
    for call in calls:  # the client's per-call lines, inside the item's sync
        assert call["location"] == loc and call["event_type"] == "customer.created"
        assert (call["entity"], call["entity_id"], call["delivery_id"]) == (
            "contact",
            "C-1",
            "dlv-1",
        )
        assert isinstance(call["work_id"], int)
    [dead] = [r for r in records if r["event"].startswith("dead letter:")]
    assert (dead["location"], dead["event_type"], dead["entity"], dead["delivery_id"]) == (
        loc,
        "customer.created",
        "contact",
        "dlv-2",
    )
    # Lines outside a sync (start, stop) carry no item's fields.
    [started] = [r for r in records if "running (SIGTERM" in r["event"]]
    assert "delivery_id" not in started and "location" not in started

    # The worker's own counters, on its --metrics-port, behind the admin token.
    assert (scraped["refused"], scraped["status"]) == (401, 200)
    samples = parse(scraped["text"])
    assert value(samples, "ghlsync_sync_outcomes_total", entity="contact", action="dead") == 1
    assert total(samples, "ghlsync_sync_outcomes_total", action="created") == 1
    ghl_calls = "ghlsync_ghl_calls_total"
    assert value(samples, ghl_calls, operation="create-contact", status="201") == 1
    assert total(samples, ghl_calls, status="transport_error") == 0
