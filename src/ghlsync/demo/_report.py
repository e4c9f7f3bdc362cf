"""The demo's screens: progress while it runs, and the final summary table.

Both bars start with the first delivery, as the summary's clock does: the sending bar stops at
the last answer (`send_seconds`), the syncing bar when the worker has synced everything, which
it does alongside the sending (`send_seconds + sync_seconds`). The start-up before them (the
sandbox, the server, the store) is counted apart in the summary.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
)
from rich.table import Table
from rich.text import Text

from ghlsync.demo._summary import ENTITY_TYPES, Summary

_OTHER_ACTIONS = ("completed", "reopened", "cancelled", "deleted")
VERIFIED = "✓ sandbox holds exactly what the events imply"


@dataclass(slots=True)
class DemoProgress:
    """Two bars: deliveries answered by the receiver, entities synced by the worker."""

    progress: Progress
    sending: TaskID
    syncing: TaskID
    started: bool = False

    def sent(self, n: int) -> None:
        """`n` more deliveries answered."""
        self._start()
        self.progress.advance(self.sending, n)
        if self.progress.tasks[self.sending].finished:
            self.progress.stop_task(self.sending)

    def synced(self, finished: int, queued: int) -> None:
        """The worker has finished `finished` of the `queued` entities."""
        self._start()
        self.progress.update(self.syncing, completed=finished, total=max(queued, 1))
        if finished == queued and self.progress.tasks[self.sending].finished:
            self.progress.stop_task(self.syncing)

    def clock(self) -> tuple[float, float] | None:
        """(seconds sending, seconds until all was synced) as the bars show them, or None."""
        tasks = self.progress.tasks
        sending, syncing = tasks[self.sending].elapsed, tasks[self.syncing].elapsed
        if sending is None or syncing is None:
            return None
        return sending, max(syncing, sending)

    def _start(self) -> None:
        # The clocks start with the work, not with the sandbox and server starting up.
        if not self.started:
            self.started = True
            self.progress.start_task(self.sending)
            self.progress.start_task(self.syncing)


class _Seconds(ProgressColumn):
    """The task's elapsed seconds (0.0 until it starts)."""

    def render(self, task: Task) -> Text:
        return Text(f"{task.elapsed or 0.0:>5.1f} s")


@contextmanager
def demo_progress(
    console: Console, events: int, get_time: Callable[[], float] | None = None
) -> Iterator[DemoProgress]:
    """Show the bars while the block runs (`get_time`: the clock, for tests)."""
    columns = (
        TextColumn("{task.description:<22}"),
        BarColumn(),
        MofNCompleteColumn(),
        _Seconds(),
    )
    with Progress(*columns, console=console, transient=False, get_time=get_time) as progress:
        sending = progress.add_task("sending DripJobs events", total=events, start=False)
        syncing = progress.add_task("syncing to GHL", total=None, start=False)
        yield DemoProgress(progress, sending, syncing)


def render_summary(summary: Summary, console: Console) -> None:
    """The final table, the dead letters and the verdict."""
    console.print(_entity_table(summary))
    console.print(_totals_line(summary), markup=False)
    deliberate = len(summary.dead_letters) == summary.planned_dead_letters
    label = "dead letter (planted on purpose)" if deliberate else "dead letter"
    for line in summary.dead_letters:
        console.print(
            f"  {label}: {line.entity_type} {line.source_id} ({line.event}): {line.reason}",
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
    lines = [_answers_line(summary), *_planted_lines(summary), _calls_line(summary)]
    return "\n".join([*lines, _time_line(summary)])


def _answers_line(summary: Summary) -> str:
    answers = ", ".join(f"{n}x {status}" for status, n in sorted(summary.answers.items()))
    return f"events sent: {summary.events_sent} (answers: {answers})"


def _planted_lines(summary: Summary) -> list[str]:
    """What the stream got wrong on purpose, so no one mistakes it for a failure."""
    if not (summary.planted or summary.repeats or summary.planned_dead_letters):
        return []
    lines = ["bad or repeated deliveries sent on purpose (each got its documented answer):"]
    if summary.repeats:
        lines.append(f"  {summary.repeats}x repeated delivery (a Zapier retry) -> 200, no change")
    lines += [f"  {planted}" for planted in summary.planted]
    if summary.planned_dead_letters:
        n = summary.planned_dead_letters
        lines.append(f"  {n}x accepted but unmappable (an invalid email) -> dead letter")
    return lines


def _calls_line(summary: Summary) -> str:
    return (
        f"GHL API calls: {summary.api_calls}, 429s: {summary.throttled}, "
        f"dead letters: {len(summary.dead_letters)}"
    )


def _time_line(summary: Summary) -> str:
    # The bars' clock: both start with the first delivery; syncing runs alongside sending.
    sending, synced = summary.send_seconds, summary.send_seconds + summary.sync_seconds
    other = max(summary.elapsed - synced, 0.0)
    return (
        f"time: {summary.elapsed:.1f} s in all: sending took {sending:.1f} s, and syncing, "
        f"which runs alongside, was done {synced:.1f} s after the first delivery (as the bars "
        f"show); {other:.1f} s start-up and checks; {summary.events_per_second:.0f} events/s"
    )
