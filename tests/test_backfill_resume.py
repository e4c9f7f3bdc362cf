"""Kill and resume: `ghlsync backfill` SIGKILLed mid-file, then `--resume`, reaches the same
end state as an uninterrupted run, creates every contact exactly once, and spends no calls
beyond the rows that were in flight at the kill. Real subprocesses, real sandbox over HTTP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from ghlsync.sandbox import SandboxServer
from ghlsync.store import create_engine
from ghlsync.store._tables_backfill import backfill_files
from tests._backfill_kit import make_export, seed_existing, write_config
from tests._robust_kit import ROOT, duplicate_records

CLI = [sys.executable, "-c", "from ghlsync.cli import main; main()", "backfill"]
WINDOW, BATCH = 16, 8


@pytest.fixture
def paced_sandbox() -> Any:
    """A sandbox at 80 calls/s: the file takes a few seconds, long enough to kill mid-run."""
    server = SandboxServer(burst=80, interval_ms=1000).start()
    try:
        yield server
    finally:
        server.stop()


def _env(sandbox: SandboxServer, url: str, config: Path) -> dict[str, str]:
    return {
        **os.environ,
        "GHLSYNC_CONFIG": str(config),
        "GHLSYNC_DATABASE_URL": url,
        "GHLSYNC_GHL_BASE_URL": sandbox.url,
        "GHLSYNC_GHL_LOCATION_ID": sandbox.location_id,
        "GHLSYNC_GHL_TOKEN": sandbox.token,
        "GHLSYNC_GHL_CALENDAR_ID": sandbox.calendar_id,
    }


def _next_row(url: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            value = conn.execute(sa.select(sa.func.max(backfill_files.c.next_row))).scalar()
        return int(value or 0)
    except sa.exc.SQLAlchemyError:
        return 0  # not migrated yet
    finally:
        engine.dispose()


def _kill_when(proc: subprocess.Popen[bytes], url: str, row: int) -> int:
    deadline = time.monotonic() + 60
    while _next_row(url) < row:
        assert proc.poll() is None, "the backfill ended before it could be killed"
        assert time.monotonic() < deadline, "the backfill made no progress"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    return _next_row(url)


def _calls(sandbox: SandboxServer) -> Counter[str]:
    return Counter(f"{r['method']} {r['path']}" for r in sandbox.state.requests)


def _created(sandbox: SandboxServer) -> int:
    """Creates GHL accepted (a create GHL refused as a duplicate made nothing)."""
    paths = ("/contacts/", "/contacts/upsert")
    return sum(
        1
        for r in sandbox.state.requests
        if r["method"] == "POST" and r["path"] in paths and r["status"] < 300
    )


def test_killed_backfill_resumes_to_the_same_end_state(
    database_url: str, paced_sandbox: SandboxServer, tmp_path: Path
) -> None:
    export = make_export(tmp_path / "customers.csv", 120, existing=6)
    seed_existing(paced_sandbox.state, paced_sandbox.location_id, export)
    config = write_config(
        tmp_path / "ghlsync.yaml",
        worker={"lease_seconds": 1.0, "poll_interval": 0.05},
        backfill={"window": WINDOW, "batch": BATCH},
    )
    env = _env(paced_sandbox, database_url, config)
    command = [*CLI, str(export.path), "--json"]
    with (tmp_path / "first.log").open("wb") as log:
        first = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log)
        stopped_at = _kill_when(first, database_url, 50)
    assert first.returncode == -signal.SIGKILL
    rows_in_file = 120 + len(export.repeats) + len(export.twins) + len(export.bad_rows)
    assert 50 <= stopped_at < rows_in_file + 2, "killed mid-file"

    again = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, timeout=120)
    assert again.returncode == 1  # an unfinished import is not restarted by accident
    assert b"--resume" in again.stderr

    resumed = subprocess.run(
        [*command, "--resume"], cwd=ROOT, env=env, capture_output=True, timeout=120
    )
    assert resumed.returncode == 0, resumed.stderr.decode()[-2000:]
    summary = json.loads(resumed.stdout)
    assert summary["next_row"] == rows_in_file + 2 and not summary["interrupted"]

    location = paced_sandbox.state.locations[paced_sandbox.location_id]
    contacts = list(location.contacts.values())
    assert len(contacts) == export.contacts_after
    state = {
        "locations": {
            paced_sandbox.location_id: {
                "contacts": contacts,
                "tasks": [],
                "notes": [],
                "appointments": [],
            }
        }
    }
    assert duplicate_records(state, paced_sandbox.location_id) == []
    calls = _calls(paced_sandbox)
    # Every new customer was created exactly once, the kill notwithstanding.
    assert _created(paced_sandbox) == export.created
    # Searches: one per row at most, plus the one batch whose searches the kill lost.
    assert calls["POST /contacts/search"] <= rows_in_file + BATCH
    # Updates: linked people, twins and repeats once each, plus the rows in flight.
    linked = len(export.existing_by_email) + len(export.existing_by_phone)
    assert calls["PUT"] == 0
    puts = sum(n for key, n in calls.items() if key.startswith("PUT /contacts/"))
    assert puts <= linked + len(export.twins) + len(export.repeats) + WINDOW
    assert not any(r["status"] == 429 for r in paced_sandbox.state.requests)


def test_ctrl_c_stops_cleanly_and_resume_finishes(
    sqlite_url: str, paced_sandbox: SandboxServer, tmp_path: Path
) -> None:
    export = make_export(tmp_path / "customers.csv", 80, existing=2)
    seed_existing(paced_sandbox.state, paced_sandbox.location_id, export)
    config = write_config(
        tmp_path / "ghlsync.yaml",
        worker={"poll_interval": 0.05},
        backfill={"window": WINDOW, "batch": BATCH},
    )
    env = _env(paced_sandbox, sqlite_url, config)
    command = [*CLI, str(export.path), "--json", "--drain-seconds", "10"]
    first = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 60
    while _next_row(sqlite_url) < 30:
        assert first.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    first.send_signal(signal.SIGINT)
    out, err = first.communicate(timeout=60)
    assert first.returncode == 130, err.decode()[-2000:]
    stopped = json.loads(out)
    assert stopped["interrupted"] and stopped["next_row"] >= 30
    # The drain let the items in flight finish: nothing is left leased.
    resumed = subprocess.run(
        [*command, "--resume"], cwd=ROOT, env=env, capture_output=True, timeout=120
    )
    assert resumed.returncode == 0, resumed.stderr.decode()[-2000:]
    assert json.loads(resumed.stdout)["next_row"] > stopped["next_row"]
    location = paced_sandbox.state.locations[paced_sandbox.location_id]
    assert len(location.contacts) == export.contacts_after
