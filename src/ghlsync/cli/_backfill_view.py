"""What `ghlsync backfill` shows: a progress bar (rows/s, ETA, calls) and the summaries."""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Column, Table
from rich.text import Text

__all__ = ["ProgressView", "print_dry_run", "print_summary"]

_DONE_LABELS = (
    ("created", "created in GHL"),
    ("linked", "linked to an existing GHL contact"),
    ("updated", "updated in GHL"),
    ("unchanged", "already in sync (0 calls)"),
    ("seen", "already imported by an earlier run (0 calls)"),
    ("rejected", "rejected (bad rows, in the dead-letter queue)"),
    ("ambiguous", "parked: match several GHL contacts (dead-letter queue)"),
    ("dead", "refused by GHL (dead-letter queue)"),
)


class _Title(ProgressColumn):
    """The title, cut short with an ellipsis (never wrapped) when the line is too narrow."""

    def render(self, task: Task) -> Text:
        return Text(task.description, style="bold", no_wrap=True, overflow="ellipsis")


def _kept() -> Column:
    """A column the line never shrinks: rich narrows the title and the bar instead (at 80
    columns, the width of a log or a default terminal, the numbers were cut to "60/20…")."""
    return Column(no_wrap=True)


class ProgressView:
    """A rich progress bar on stderr; `update(progress)` is the backfill's callback.

    On a terminal it redraws in place; elsewhere (a pipe, a log file) rich prints the last
    state once, when the view closes. `console` and `get_time` are for tests.
    """

    def __init__(
        self,
        title: str,
        *,
        quiet: bool = False,
        console: Console | None = None,
        get_time: Callable[[], float] | None = None,
    ) -> None:
        self._title = title
        self._quiet = quiet
        self._bar = Progress(
            _Title(),
            BarColumn(bar_width=24),
            MofNCompleteColumn(table_column=_kept()),
            TextColumn("{task.fields[rate]:>7.1f} rows/s", table_column=_kept()),
            TimeElapsedColumn(table_column=_kept()),
            TextColumn("ETA", table_column=_kept()),
            TimeRemainingColumn(table_column=_kept()),
            TextColumn("{task.fields[calls]} calls", table_column=_kept()),
            console=console or Console(stderr=True),
            get_time=get_time,
            disable=quiet,
        )
        self._task: TaskID | None = None
        self._first: tuple[float, int] | None = None

    def __enter__(self) -> ProgressView:
        self._bar.start()
        self._task = self._bar.add_task(self._title, total=None, rate=0.0, calls=0)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._bar.stop()

    def update(self, progress: Any) -> None:
        """Move the bar to where the backfill stands."""
        if self._task is None:
            return
        now = self._bar.get_time()
        if self._first is None:
            self._first = (now, progress.rows_done)
        started, base = self._first
        rate = (progress.rows_done - base) / (now - started) if now > started else 0.0
        self._bar.update(
            self._task,
            total=progress.rows_total,
            completed=progress.rows_done,
            rate=rate,
            calls=progress.calls,
        )


def print_summary(summary: Any) -> None:
    """The final summary of a run (totals over the whole file, across resumes)."""
    console = Console()
    counts = summary.counts
    if summary.already_finished:
        console.print(f"{summary.file_name} was imported before; nothing to do.")
    table = Table(title=f"backfill {summary.file_name} ({summary.kind})", show_header=False)
    table.add_row("rows", str(summary.rows_total))
    for key, label in _DONE_LABELS:
        if counts.get(key):
            table.add_row(label, str(counts[key]))
    table.add_row("GHL calls (this run)", str(summary.calls))
    table.add_row("time (this run)", f"{summary.seconds:.1f} s")
    console.print(table)
    if summary.interrupted:
        console.print(
            f"[yellow]Stopped before row {summary.next_row}: run the same command with "
            "--resume to continue there.[/]"
        )
    elif counts.get("rejected") or counts.get("ambiguous") or counts.get("dead"):
        console.print("Parked rows: `ghlsync dlq list` (each reason names its row).")


def print_dry_run(report: Any) -> None:
    """The dry run's table, the match report and example problem rows."""
    data = report.to_dict()
    console = Console()
    table = Table(title=f"dry run: {data['file']} ({data['kind']}), {data['rows']} rows")
    table.add_column("would")
    table.add_column("rows", justify="right")
    for key, value in data["would"].items():
        table.add_row(key.replace("_", " "), str(value))
    console.print(table)
    match = data["match"]
    console.print(
        f"match report: {match['matched']} matched (linked, not created), {match['new']} new, "
        f"{match['ambiguous']} ambiguous (parked); {data['calls']} GHL searches"
    )
    for row in data["ambiguous"]:
        console.print(
            f"  row {row['row']}: customer {row['customer']} matches GHL contacts "
            f"{', '.join(row['ghl_ids'])}"
        )
    for row in data["rejected"]:
        console.print(f"  row {row['row']}: {row['reason']}")
