"""Narrow terminals and pipes (issue 8, item 16).

At 80 columns every table row stays on one line (long values cut with `…`, in full in `show`
or `--json`); the demo's summary says which bad deliveries were sent on purpose, and its
timings are the progress bars' timings.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

from rich.cells import cell_len
from rich.console import Console
from typer.testing import CliRunner, Result

from ghlsync._clock import FakeClock
from ghlsync.cli import app
from ghlsync.cli._tables import Column, FitTable
from ghlsync.demo._report import demo_progress, render_summary
from ghlsync.demo._summary import DeadLetterLine, Summary
from ghlsync.engine import claim, dead_letter
from ghlsync.ghl._crypto import generate_key
from ghlsync.store import create_engine, migrate
from tests._engine_kit import delivery, send

LONG = "GHL refused the contact: " + "the email address is not valid and the phone too " * 3


def _render(table: FitTable, width: int = 80) -> list[str]:
    buffer = io.StringIO()
    Console(width=width, file=buffer, color_system=None).print(table.render(width))
    return buffer.getvalue().splitlines()


def test_a_fitted_table_keeps_every_row_on_one_line() -> None:
    table = FitTable("t", [Column("id", justify="right"), Column("when"), Column("why", flex=True)])
    table.add_row("1", "2026-12-06 01:23:45 UTC", LONG)
    table.add_row("22", "2026-12-06 01:23:46 UTC", "short [422]")

    lines = _render(table)

    assert all(cell_len(line) <= 80 for line in lines)
    rows = [line for line in lines if "UTC" in line]
    assert len(rows) == 2  # no value wrapped onto a second line
    assert "2026-12-06 01:23:45 UTC" in rows[0] and "…" in rows[0]  # fixed kept, flexible cut
    assert "short [422]" in rows[1]  # data, not markup
    assert len(lines) == 1 + 1 + 2  # title, header, two rows


def test_a_table_wider_than_everything_still_fits() -> None:
    columns = [Column(f"c{i}") for i in range(6)]
    table = FitTable("wide", columns)
    table.add_row(*(f"value-{i}-" * 4 for i in range(6)))

    lines = _render(table, width=60)

    assert all(cell_len(line) <= 60 for line in lines)
    assert len([line for line in lines if "value-0" in line]) == 1


def _run(*args: str, **env: str) -> Result:
    env = {"COLUMNS": "80", "GHLSYNC_CONFIG": "", "GHLSYNC_DATABASE_URL": "", **env}
    return CliRunner().invoke(app, list(args), env=env)


def test_dlq_list_at_80_columns_cuts_the_reason_and_show_has_it_whole(tmp_path: Path) -> None:
    config = tmp_path / "ghlsync.yaml"
    config.write_text("database_url: sqlite:///ghlsync.db\n")
    engine = create_engine(f"sqlite:///{tmp_path / 'ghlsync.db'}")
    migrate(engine)
    location = "loc_with_a_rather_long_identifier_01"
    send(engine, delivery("c1", "customer.created", location=location))
    (item,) = claim(engine, "w1", [location], 10, 30)
    assert dead_letter(engine, item, LONG, "UnprocessableError")
    engine.dispose()

    listed = _run("dlq", "list", "--config", str(config))
    shown = _run("dlq", "show", "1", "--json", "--config", str(config))

    assert listed.exit_code == 0, listed.output
    lines = listed.stdout.splitlines()
    assert all(cell_len(line) <= 80 for line in lines), listed.stdout
    (row,) = [line for line in lines if "contact:c1" in line]
    assert "GHL refused the contact" in row and row.rstrip().endswith("…")
    assert json.loads(shown.stdout)["reason"] == LONG


def test_locations_list_at_80_columns(tmp_path: Path) -> None:
    config = tmp_path / "ghlsync.yaml"
    config.write_text("database_url: sqlite:///ghlsync.db\n")
    key = generate_key()
    name = "A very long location name that would wrap over several lines"
    added = _run(
        "locations", "add", "loc_b", "--token", "pit-b-0123456789", "--name", name,
        "--calendar", "cal_with_a_long_identifier_0123456789", "--config", str(config),
        GHLSYNC_SECRET_KEY=key,
    )  # fmt: skip
    assert added.exit_code == 0, added.output

    listed = _run("locations", "list", "--config", str(config))

    assert listed.exit_code == 0, listed.output
    lines = listed.stdout.splitlines()
    assert all(cell_len(line) <= 80 for line in lines), listed.stdout
    assert len([line for line in lines if "loc_b" in line]) == 1, listed.stdout


def test_the_demo_summary_names_what_was_bad_on_purpose_and_uses_the_bars_clock() -> None:
    clock = FakeClock(start=100.0)
    buffer = io.StringIO()
    out = Console(width=80, file=buffer, color_system=None)
    with demo_progress(out, 3, get_time=clock.now) as bars:
        clock.advance(5.0)  # start-up: the sandbox and the server; no bar counts it
        bars.sent(1)
        clock.advance(2.0)
        bars.sent(2)
        bars.synced(1, 2)
        clock.advance(1.5)
        bars.synced(2, 2)
    assert bars.clock() == (2.0, 3.5)
    summary = Summary(events_sent=3, answers={202: 2, 400: 1}, elapsed=9.0)
    summary.send_seconds, summary.sync_seconds = 2.0, 1.5
    summary.planted = ["1x lead.created (no id field) -> 400"]
    summary.planned_dead_letters = 1
    summary.dead_letters = [DeadLetterLine("contact", "c9", "customer.created", "bad email")]

    render_summary(summary, out)

    text = buffer.getvalue()
    assert "  2.0 s" in text and "  3.5 s" in text  # the bars
    assert "sending took 2.0 s" in text and "done 3.5 s after the first delivery" in text
    assert "sent on purpose" in text and "lead.created (no id field) -> 400" in text
    assert "dead letter (planted on purpose): contact c9" in text
