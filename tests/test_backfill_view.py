"""What `ghlsync backfill` shows: the progress bar (rows settled of the file, rows/s, elapsed,
ETA, GHL calls spent) on a terminal and in a pipe or log, kept readable at 80 columns; and the
command's own output on a small file (the bar on stderr, the summary table on stdout)."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from ghlsync.backfill import Progress
from ghlsync.cli._backfill_view import ProgressView
from ghlsync.sandbox import SandboxServer
from tests._backfill_kit import make_export, seed_existing

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _shown(terminal: bool, width: int, title: str = "backfill customers.csv") -> str:
    """The bar after two updates 10 s apart (fake clock): 10 → 60 of 200 rows settled."""
    out = io.StringIO()
    console = Console(file=out, width=width, force_terminal=terminal, color_system=None)
    now = [1000.0]
    with ProgressView(title, console=console, get_time=lambda: now[0]) as view:
        view.update(Progress(rows_total=200, rows_done=10, calls=3))
        now[0] += 10.0
        view.update(Progress(rows_total=200, rows_done=60, calls=107))
    text = _ANSI.sub("", out.getvalue())
    return text.replace("\r", "\n").strip().splitlines()[-1]  # the last state drawn


@pytest.mark.parametrize("terminal", [False, True], ids=["pipe", "terminal"])
@pytest.mark.parametrize("width", [80, 160])
def test_the_bar_shows_rows_rate_eta_and_calls(terminal: bool, width: int) -> None:
    line = _shown(terminal, width)
    assert len(line) <= width
    assert "60/200" in line  # rows settled of the file
    assert "5.0 rows/s" in line  # 50 rows in 10 s since the first update
    assert "0:00:10" in line  # elapsed
    assert "ETA 0:00:28" in line  # 140 rows left at 5 rows/s
    assert line.endswith("107 calls")
    # Too narrow for all of it: the title and the bar give way (ellipsis), never the numbers.
    assert line.startswith("backfill customers.csv" if width > 80 else "backfill cus")


def test_a_long_file_name_gives_way_to_the_numbers() -> None:
    line = _shown(False, 80, "backfill dripjobs-customers-export-2026-12-06-all-locations.csv")
    assert line.startswith("backfill dri") and "…" in line
    assert "60/200" in line and "5.0 rows/s" in line and "ETA 0:00:28" in line
    assert line.endswith("107 calls") and len(line) <= 80


def test_quiet_draws_nothing() -> None:
    out = io.StringIO()
    console = Console(file=out, width=80, force_terminal=True)
    with ProgressView("backfill customers.csv", quiet=True, console=console) as view:
        view.update(Progress(rows_total=200, rows_done=60, calls=107))
    assert out.getvalue() == ""


@pytest.fixture
def fast_sandbox() -> Iterator[SandboxServer]:
    server = SandboxServer(burst=2000, interval_ms=1000).start()
    try:
        yield server
    finally:
        server.stop()


def test_cli_shows_the_bar_on_stderr_and_the_summary_on_stdout(
    fast_sandbox: SandboxServer, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from ghlsync.cli import app

    base = tmp_path
    export = make_export(base / "customers.csv", 20, existing=2)
    seed_existing(fast_sandbox.state, fast_sandbox.location_id, export)
    rows = 20 + len(export.repeats) + len(export.twins) + len(export.bad_rows)
    env = {
        "GHLSYNC_DATABASE_URL": f"sqlite:///{base / 'ghlsync.db'}",
        "GHLSYNC_GHL_BASE_URL": fast_sandbox.url,
        "GHLSYNC_GHL_LOCATION_ID": fast_sandbox.location_id,
        "GHLSYNC_GHL_TOKEN": fast_sandbox.token,
        "COLUMNS": "80",
    }
    result = CliRunner().invoke(app, ["backfill", str(export.path)], env=env)
    assert result.exit_code == 0, result.output
    # Not a terminal: the bar's last state, once, on stderr.
    bars = [line for line in result.stderr.splitlines() if "rows/s" in line]
    assert len(bars) == 1, result.stderr
    bar = bars[0]
    calls = len(fast_sandbox.state.requests)
    assert bar.startswith("backfill cust")  # 80 columns: the title gave way
    assert f"{rows}/{rows}" in bar and re.search(r"\d+\.\d rows/s", bar)
    assert "ETA 0:00:00" in bar
    assert bar.endswith(f"{calls} calls")  # every call this process sent to GHL
    # The summary on stdout: totals of the file and this run's calls and time.
    out = result.stdout.replace("│", " ")  # the table's cell borders
    assert "backfill customers.csv (customers)" in out
    assert re.search(rf"rows\s+{rows}\b", out)
    assert re.search(rf"created in GHL\s+{export.created}\b", out)
    assert re.search(r"linked to an existing GHL contact\s+\d+", out)
    assert re.search(
        rf"rejected \(bad rows, in the dead-letter queue\)\s+{len(export.bad_rows)}", out
    )
    assert re.search(rf"GHL calls \(this run\)\s+{calls}\b", out)
    assert re.search(r"time \(this run\)\s+\d+\.\d s", out)
    assert "Parked rows: `ghlsync dlq list`" in out
