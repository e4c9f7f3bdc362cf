"""The two-way benchmark measures what it says: every GHL change paired with its write-back,
and the echo and duplicate counts it reports are real (no timing asserted; figures in bench/)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

from bench_two_way import Change, _match, render, run_store


@pytest.fixture(autouse=True)
def _quiet_client() -> Iterator[None]:
    logger = logging.getLogger("ghlsync")
    level = logger.level
    logger.setLevel(logging.ERROR)
    yield
    logger.setLevel(level)


async def test_a_small_run_pairs_every_change_with_one_writeback(sqlite_url: str) -> None:
    result = await run_store("sqlite", sqlite_url, contacts=4, rate=50.0)
    kinds = sorted(change.kind for change in result.changes)
    assert kinds == ["create_appointment_request"] * 2 + ["create_lead"] * 4 + [
        "update_appointment"
    ]
    assert result.missing() == 0 and result.writebacks == len(result.changes)
    assert result.echo_writes == 0 and result.duplicates == 0
    assert len(result.latencies_ms()) == 7
    table = render([result], contacts=4, rate=50.0)
    assert "| sqlite | 7 | 7 | 1.00 | 0 | 0 | 0 |" in table


def test_a_writeback_older_than_its_change_is_not_its_own() -> None:
    change = Change("update_appointment", "appt_1", at=100.0)
    earlier = {"action": "update_appointment", "data": {"ghl_appointment_id": "appt_1"}}
    _match([change], [{**earlier, "received_at": 90.0}, {**earlier, "received_at": 100.2}])
    assert change.arrived == 100.2
