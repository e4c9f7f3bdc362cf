"""Dead-letter replay, `queue_status`, and the `status` / `dlq` commands."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

import ghlsync.engine
from ghlsync._clock import FakeClock
from ghlsync.cli import app
from ghlsync.engine import (
    claim,
    dead_letter,
    get_dead_letter,
    list_dead_letters,
    queue_status,
    replay,
    replay_all,
    retry,
)
from tests._engine_kit import delivery, send, work_row

REASON = "GHL rejected the contact: 422 email must be an email (trace abc)"


def _kill(engine: sa.Engine, clock: FakeClock, *source_ids: str, location: str = "loc1") -> None:
    """Accept, claim and dead-letter each entity."""
    send(engine, *(delivery(s, location=location, email="bad") for s in source_ids))
    for item in claim(engine, "w1", [location], 100, 30, clock=clock):
        assert dead_letter(engine, item, REASON, "UnprocessableError", clock=clock)


def test_replay_moves_the_item_back_to_pending_with_attempts_reset(
    engine_store: sa.Engine, engine_clock: FakeClock
) -> None:
    _kill(engine_store, engine_clock, "c1")
    (letter,) = list_dead_letters(engine_store)
    assert (letter.reason, letter.payload["email"]) == (REASON, "bad")
    engine_clock.advance(60)
    assert replay(engine_store, letter.id, clock=engine_clock)
    row = work_row(engine_store, "c1")
    assert (row["status"], row["attempts"], row["generation"]) == ("pending", 0, 2)
    stored = get_dead_letter(engine_store, letter.id)
    assert stored is not None and stored.replayed_at == engine_clock.now()
    assert list_dead_letters(engine_store) == []
    assert not replay(engine_store, letter.id, clock=engine_clock)  # only once
    (again,) = claim(engine_store, "w1", None, 10, 30, clock=engine_clock)
    assert again.attempts == 1


def test_replay_all_of_one_location(engine_store: sa.Engine, engine_clock: FakeClock) -> None:
    _kill(engine_store, engine_clock, "c1", "c2", location="a")
    _kill(engine_store, engine_clock, "c3", location="b")
    assert replay_all(engine_store, location="a", clock=engine_clock) == 2
    assert [d.source_id for d in list_dead_letters(engine_store)] == ["c3"]
    assert replay_all(engine_store, clock=engine_clock) == 1
    assert list_dead_letters(engine_store, include_replayed=True)[0].replayed_at is not None


def test_queue_status_counts_ages_and_errors(
    engine_store: sa.Engine, engine_clock: FakeClock
) -> None:
    _kill(engine_store, engine_clock, "c1", location="a")
    send(
        engine_store,
        delivery("c2", location="a", received_at=engine_clock.now() - 30),
        delivery("c3", location="b", received_at=engine_clock.now() - 5),
    )
    (item,) = claim(engine_store, "w1", ["b"], 1, 30, clock=engine_clock)
    assert retry(engine_store, item, "GHL failed on the contact: 502", 10, clock=engine_clock)
    report = queue_status(engine_store, clock=engine_clock)
    a, b = report.locations["a"], report.locations["b"]
    assert a.counts == {"pending": 1, "leased": 0, "done": 0, "dead": 1}
    assert (a.dead_letters, a.oldest_pending_age) == (1, 30.0)
    assert [(e.source_id, e.status, e.error) for e in a.last_errors] == [("c1", "dead", REASON)]
    assert b.last_errors[0].error == "GHL failed on the contact: 502"
    assert b.oldest_pending_age == 0.0  # due only in 10 s
    assert report.totals() == {"pending": 2, "leased": 0, "done": 0, "dead": 1, "dead_letters": 1}
    assert json.loads(json.dumps(report.to_dict()))["totals"]["dead"] == 1


def test_engine_exports_are_pinned() -> None:
    assert ghlsync.engine.__all__ == [
        "AuditEntry",
        "Claim",
        "DeadLetter",
        "Delivery",
        "QueueStatus",
        "SyncEvent",
        "Worker",
        "accept",
        "accept_many",
        "add_budgets",
        "claim",
        "complete",
        "dead_letter",
        "delivery_key",
        "get_dead_letter",
        "list_dead_letters",
        "locations_with_work",
        "next_due",
        "queue_status",
        "release",
        "renew",
        "replay",
        "replay_all",
        "retry",
    ]


@pytest.fixture
def cli_env(sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the CLI against `sqlite_url`, from an empty directory (no stray ghlsync.yaml)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GHLSYNC_CONFIG", raising=False)
    monkeypatch.setenv("GHLSYNC_DATABASE_URL", sqlite_url)
    return sqlite_url


def test_cli_status_dlq_list_show_and_replay(cli_env: str) -> None:
    from ghlsync.store import create_engine, migrate

    engine = create_engine(cli_env)
    migrate(engine)
    _kill(engine, FakeClock(start=time.time()), "c1")  # status reads the real clock
    runner = CliRunner()

    shown = runner.invoke(app, ["status", "--json"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["totals"]["dead_letters"] == 1
    table = runner.invoke(app, ["status"])
    assert table.exit_code == 0 and "loc1" in table.output and "Last errors" in table.output

    listed = runner.invoke(app, ["dlq", "list", "--json"])
    (letter,) = json.loads(listed.output)
    assert letter["reason"] == REASON
    detail = runner.invoke(app, ["dlq", "show", str(letter["id"])])
    assert detail.exit_code == 0 and "email must be an email" in detail.output

    replayed = runner.invoke(app, ["dlq", "replay", str(letter["id"])])
    assert replayed.exit_code == 0, replayed.output
    assert work_row(engine, "c1")["status"] == "pending"
    again = runner.invoke(app, ["dlq", "replay", str(letter["id"])])
    assert again.exit_code == 1 and "already replayed" in again.output
    engine.dispose()


def test_cli_errors_exit_non_zero_with_a_message(cli_env: str) -> None:
    from ghlsync.store import create_engine, migrate

    migrate(create_engine(cli_env))  # read-only commands never create the store themselves
    runner = CliRunner()
    missing = runner.invoke(app, ["dlq", "show", "999"])
    assert missing.exit_code == 1 and "no dead letter with id 999" in missing.output
    neither = runner.invoke(app, ["dlq", "replay"])
    assert neither.exit_code == 2 and "either a dead letter ID or --all" in neither.output
    assert (
        runner.invoke(app, ["dlq", "replay", "--all"]).output.strip() == "replayed 0 dead letters"
    )
    no_token = runner.invoke(app, ["worker"])
    assert no_token.exit_code == 2 and "ghl.location_id and ghl.token" in no_token.output
