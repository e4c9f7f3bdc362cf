"""Killed at random points: `ghlsync backfill` SIGKILLed twice at random rows (a new seed each
run, named in any failure), resumed each time with `--resume`, reaches the same end state as
an uninterrupted run: every contact created once, no duplicate, and no calls beyond the rows
that were in flight at each kill (SQLite and PostgreSQL; real subprocesses, sandbox over HTTP)."""

from __future__ import annotations

import json
import random
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from ghlsync.sandbox import SandboxServer
from tests._backfill_kit import make_export, seed_existing, write_config
from tests._robust_kit import ROOT, duplicate_records
from tests.test_backfill_resume import (
    BATCH,
    CLI,
    WINDOW,
    _calls,
    _created,
    _env,
    _kill_when,
)

GOOD, KILLS = 150, 2


@pytest.fixture
def paced() -> Any:
    """A sandbox at 80 calls/s: the file takes several seconds, long enough to kill twice."""
    server = SandboxServer(burst=80, interval_ms=1000).start()
    try:
        yield server
    finally:
        server.stop()


def test_killed_twice_at_random_rows_resumes_to_the_same_end_state(
    database_url: str, paced: SandboxServer, tmp_path: Path
) -> None:
    seed = random.randrange(1_000_000)
    export = make_export(tmp_path / "customers.csv", GOOD, existing=5)
    seed_existing(paced.state, paced.location_id, export)
    rows_in_file = GOOD + len(export.repeats) + len(export.twins) + len(export.bad_rows)
    points = sorted(random.Random(seed).sample(range(15, rows_in_file - 20), KILLS))
    config = write_config(
        tmp_path / "ghlsync.yaml",
        worker={"lease_seconds": 1.0, "poll_interval": 0.05},
        backfill={"window": WINDOW, "batch": BATCH},
    )
    env = _env(paced, database_url, config)
    command = [*CLI, str(export.path), "--json"]
    for n, point in enumerate(points):
        args = command if n == 0 else [*command, "--resume"]
        with (tmp_path / f"run{n}.log").open("wb") as log:
            run = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=log)
            stopped = _kill_when(run, database_url, point)
        assert run.returncode == -signal.SIGKILL, f"seed {seed}: kill {n} at row {point}"
        assert stopped < rows_in_file + 2, f"seed {seed}: killed after the end"

    done = subprocess.run(
        [*command, "--resume"], cwd=ROOT, env=env, capture_output=True, timeout=180
    )
    assert done.returncode == 0, f"seed {seed}: " + done.stderr.decode()[-2000:]
    assert json.loads(done.stdout)["next_row"] == rows_in_file + 2

    location = paced.state.locations[paced.location_id]
    contacts = list(location.contacts.values())
    assert len(contacts) == export.contacts_after, f"seed {seed}, kills at {points}"
    state = {"contacts": contacts, "tasks": [], "notes": [], "appointments": []}
    problems = duplicate_records({"locations": {location.id: state}}, location.id)
    assert problems == [], f"seed {seed}, kills at {points}"
    assert _created(paced) == export.created, f"seed {seed}, kills at {points}"
    calls = _calls(paced)
    # At most each killed batch's searches again, and each kill's window of updates again.
    assert calls["POST /contacts/search"] <= rows_in_file + KILLS * BATCH, f"seed {seed}"
    puts = sum(n for key, n in calls.items() if key.startswith("PUT /contacts/"))
    linked = len(export.existing_by_email) + len(export.existing_by_phone)
    assert puts <= linked + len(export.twins) + len(export.repeats) + KILLS * WINDOW, seed
    assert not any(r["status"] == 429 for r in paced.state.requests)
