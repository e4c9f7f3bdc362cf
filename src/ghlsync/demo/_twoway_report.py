"""The two-way demo's screen: one row per phase, the totals, and the verdict."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from ghlsync.demo._twoway_demo import TwoWaySummary

AGREED = "✓ GHL and DripJobs agree"


def render_two_way(summary: TwoWaySummary, console: Console) -> None:
    """The phase table, the counts the issue asks for, and every disagreement."""
    console.print(_phase_table(summary))
    console.print(_totals(summary), markup=False)
    echo_style = "green" if summary.echo_writes == 0 else "red"
    dup_style = "green" if summary.duplicates == 0 else "red"
    console.print(f"[bold {echo_style}]echo writes: {summary.echo_writes}[/]")
    console.print(f"[bold {dup_style}]duplicates: {summary.duplicates}[/]")
    if summary.ok:
        console.print(f"[bold green]{AGREED}[/]")
        return
    if summary.problems:
        console.print(f"[bold red]✗ {len(summary.problems)} disagreements:[/]")
    for problem in summary.problems:
        console.print(f"  - {problem}", markup=False)


def _phase_table(summary: TwoWaySummary) -> Table:
    table = Table(title="ghlsync demo --two-way: GHL ⇄ DripJobs", title_justify="left")
    columns = ("phase", "changes", "GHL writes", "write-backs", "expected", "echo", "s")
    for name in columns:
        table.add_column(name, justify="left" if name == "phase" else "right")
    for phase in summary.phases:
        table.add_row(
            phase.name,
            str(phase.changes),
            str(phase.ghl_writes),
            str(phase.writebacks),
            str(phase.expected_writebacks),
            str(phase.echo_writes),
            f"{phase.seconds:.1f}",
        )
    return table


def _totals(summary: TwoWaySummary) -> str:
    writebacks = ", ".join(f"{n} {a}" for a, n in sorted(summary.writebacks.items())) or "none"
    fired = ", ".join(f"{n} {e}" for e, n in sorted(summary.fired.items())) or "none"
    return (
        f"write-backs to DripJobs: {writebacks} "
        f"(+{summary.duplicate_webhook_ids} retries deduped by webhook-id)\n"
        f"DripJobs triggers fired: {fired}\n"
        f"GHL API calls by ghlsync: {summary.ghl_calls}\n"
        f"time: {summary.elapsed:.1f} s"
    )
