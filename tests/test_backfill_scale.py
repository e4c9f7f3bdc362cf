"""Backfill at the issue's size: a 5,000-row DripJobs export (repeats, twins, bad rows, people
already in GHL, one ambiguous customer) against the sandbox over loopback HTTP → the exact GHL
end state, no duplicate contact, bad rows in the dead-letter queue with their row numbers.

Both stores run the full 5,000 rows (2026-12-06, 2-core machine, nice 19: about 55-65 s on
SQLite, 79-88 s on PostgreSQL depending on load; 1,000 rows on PostgreSQL took 19 s)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ghlsync.backfill import BackfillPlan
from ghlsync.engine import list_dead_letters
from ghlsync.sandbox import SandboxServer
from ghlsync.store import create_engine, migrate
from tests._backfill_kit import make_export, seed_existing
from tests._robust_kit import duplicate_records
from tests.test_backfill_e2e import _config, _contacts, _Run, _state_json

ROWS = 5000


@pytest.fixture
def open_sandbox() -> Any:
    """A sandbox whose limit hardly binds: the test checks correctness, not pacing."""
    server = SandboxServer(burst=2000, interval_ms=1000).start()
    try:
        yield server
    finally:
        server.stop()


async def test_a_full_size_export_reaches_the_exact_end_state(
    database_url: str, open_sandbox: SandboxServer, tmp_path: Path
) -> None:
    good = ROWS
    export = make_export(tmp_path / "customers.csv", good, existing=50)
    existing = seed_existing(open_sandbox.state, open_sandbox.location_id, export)
    engine = create_engine(database_url)
    migrate(engine)
    run = _Run(engine, _config(open_sandbox, database_url, window=128, batch=64))
    try:
        summary = await run.backfill(
            BackfillPlan(export.path, "customers", open_sandbox.location_id)
        )
    finally:
        await run.close()

    contacts = _contacts(open_sandbox)
    assert len(contacts) == export.contacts_after
    assert duplicate_records(_state_json(open_sandbox), open_sandbox.location_id) == []
    by_id = {c["id"]: c for c in contacts}
    assert all(by_id[existing[f"email{i}"]]["firstName"] == "Pat" for i in export.existing_by_email)
    assert all(
        by_id[existing[f"phone{i}"]]["email"] == f"pat{i}@example.com"
        for i in export.existing_by_phone
    )
    assert by_id[existing["amb_email"]]["firstName"] == "One"  # the ambiguous one: untouched
    emails = {str(c.get("email")).lower() for c in contacts}
    assert {f"pat{i}@example.com" for i in range(1, good + 1)} - emails == {
        f"pat{export.ambiguous}@example.com"  # its two contacts hold the email and the phone
    } - emails
    counts = summary.counts
    assert counts["created"] == export.created
    assert counts["linked"] == 2 * 50 + len(export.twins)
    assert (counts["rejected"], counts["ambiguous"]) == (len(export.bad_rows), 1)
    letters = {d.reason for d in list_dead_letters(engine, limit=1000)}
    for row, why in export.bad_rows.items():
        assert any(f"customers.csv row {row}:" in r and why in r for r in letters), (row, why)
    assert len(letters) == len(export.bad_rows) + 1  # and the ambiguous customer, nothing else
    assert not any(r["status"] == 429 for r in open_sandbox.state.requests)
    engine.dispose()
