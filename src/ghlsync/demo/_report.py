"""The demo's screens: progress while it runs, and the final summary table."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn
from rich.table import Table

from ghlsync.demo._summary import ENTITY_TYPES, Summary

_OTHER_ACTIONS = ("completed", "reopened", "cancelled", "deleted")
VERIFIED = "✓ sandbox holds exactly what the events imply"


@dataclass(slots=True)
class DemoProgress:
    """Two bars: deliveries answered by the receiver, entities synced by the worker."""

    progress: Progress
    sending: TaskID
    syncing: TaskID

    def sent(self, n: int) -> None:
        """`n` more deliveries answered."""
        self.progress.advance(self.sending, n)
        if self.progress.tasks[self.sending].finished:
            self.progress.stop_task(self.sending)

    def synced(self, finished: int, queued: int) -> None:
        """The worker has finished `finished` of the `queued` entities."""
        self.progress.update(self.syncing, completed=finished, total=max(queued, 1))
        if finished == queued and self.progress.tasks[self.sending].finished:
            self.progress.stop_task(self.syncing)


@contextmanager
def demo_progress(console: Console, events: int) -> Iterator[DemoProgress]:
    """Show the bars while the block runs."""
    columns = (
        TextColumn("{task.description:<22}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.elapsed:>5.1f} s"),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        sending = progress.add_task("sending DripJobs events", total=events)
        syncing = progress.add_task("syncing to GHL", total=None)
        yield DemoProgress(progress, sending, syncing)


def render_summary(summary: Summary, console: Console) -> None:
    """The final table, the dead letters and the verdict."""
    console.print(_entity_table(summary))
    console.print(_totals_line(summary))
    for line in summary.dead_letters:
        console.print(
            f"  dead letter: {line.entity_type} {line.source_id} ({line.event}): {line.reason}",
            markup=False,
        )
    if summary.ok:
        console.print(f"[bold green]{VERIFIED}[/]")
        return
    console.print(f"[bold red]✗ {len(summary.problems)} mismatches:[/]")
    for problem in summary.problems:
        console.print(f"  - {problem}", markup=False)


def _entity_table(summary: Summary) -> Table:
    table = Table(title="ghlsync demo: DripJobs → GHL sandbox", title_justify="left")
    for name in ("entity", "created", "updated", "skipped (no-op)", "other"):
        table.add_column(name, justify="left" if name == "entity" else "right")
    for entity in ENTITY_TYPES:
        other = ", ".join(
            f"{summary.count(entity, action)} {action}"
            for action in _OTHER_ACTIONS
            if summary.count(entity, action)
        )
        table.add_row(
            f"{entity}s",
            str(summary.count(entity, "created")),
            str(summary.count(entity, "updated")),
            str(summary.count(entity, "skipped")),
            other or "-",
        )
    return table


def _totals_line(summary: Summary) -> str:
    answers = ", ".join(f"{n}x {status}" for status, n in sorted(summary.answers.items()))
    return (
        f"events sent: {summary.events_sent} (answers: {answers})\n"
        f"GHL API calls: {summary.api_calls}, 429s: {summary.throttled}, "
        f"dead letters: {len(summary.dead_letters)}\n"
        f"time: {summary.elapsed:.1f} s (sending {summary.send_seconds:.1f} s, "
        f"then syncing {summary.sync_seconds:.1f} s; "
        f"{summary.events_per_second:.0f} events/s)"
    )
