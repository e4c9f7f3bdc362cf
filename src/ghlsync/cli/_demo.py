"""`ghlsync demo`: the whole pipeline on the embedded default, no credentials needed."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import typer

_CUSTOMERS = typer.Option(40, "--customers", min=1, max=5000, help="DripJobs customers to invent.")
_SEED = typer.Option(7, "--seed", help="Random seed: the same seed gives the same stream.")
_DATABASE_URL = typer.Option(
    None,
    "--database-url",
    help="Store to use instead of a temporary SQLite file (e.g. postgresql+psycopg://...).",
)
_FAULTS = typer.Option(
    None,
    "--faults",
    help='Sandbox faults, e.g. \'{"429": 0.05, "500": 0.05, "timeout": 0.02, "reset": 0.02}\'.',
)
_KEEP = typer.Option(False, "--keep", help="Keep the temporary SQLite store and print its path.")
_JSON = typer.Option(False, "--json", help="Print the summary as JSON instead of a table.")
_VERBOSE = typer.Option(False, "--verbose", help="Show the GHL client's retry warnings.")
_TWO_WAY = typer.Option(
    False,
    "--two-way",
    help="Two-way instead: GHL sandbox ⇄ ghlsync ⇄ DripJobs emulator, changes on both sides.",
)
_PEOPLE = typer.Option(
    6, "--people", min=1, max=200, help="With --two-way: people created on each side."
)

_DEFAULT_TIMEOUT_SECONDS = 1.0  # how long the sandbox holds an answer for a "timeout" fault


# The help as paragraphs of one line each: typer keeps a docstring's line breaks after the
# first paragraph, which then wrap again at the terminal's width (ragged at 80 columns).
_HELP = (
    "The whole pipeline on the sandbox, then a check that GHL holds what the events imply.\n\n"
    "A realistic DripJobs event stream goes over HTTP to the real receiver, into a temporary "
    "SQLite store, through the real worker into the GHL sandbox; no credentials needed. "
    "With --two-way, people and appointments change in GHL and in an emulated DripJobs, and "
    "the summary shows the write-backs, 0 echo writes, 0 duplicates and that both agree."
)


def register(app: typer.Typer) -> None:
    """Add `demo` to `app`."""
    app.command("demo", help=_HELP)(demo)


def demo(
    customers: int = _CUSTOMERS,
    seed: int = _SEED,
    database_url: str | None = _DATABASE_URL,
    faults: str | None = _FAULTS,
    keep: bool = _KEEP,
    as_json: bool = _JSON,
    verbose: bool = _VERBOSE,
    two_way: bool = _TWO_WAY,
    people: int = _PEOPLE,
) -> None:
    """The whole pipeline on the sandbox, then a check that GHL holds what the events imply.

    A realistic DripJobs event stream goes over HTTP to the real receiver, into a temporary
    SQLite store, through the real worker into the GHL sandbox; no credentials needed.
    With --two-way, people and appointments change in GHL and in an emulated DripJobs, and
    the summary shows the write-backs, 0 echo writes, 0 duplicates and that both agree.
    """
    if two_way:
        if faults:
            raise typer.BadParameter("not available with --two-way", param_hint="--faults")
        _two_way(people, seed, database_url, keep=keep, as_json=as_json, verbose=verbose)
        return
    from rich.console import Console

    from ghlsync.demo import PipelineError, PipelineOptions, build_stream, run_stream
    from ghlsync.demo._report import demo_progress, render_summary
    from ghlsync.demo._summary import planted_deliveries

    fault_rates = _parse_faults(faults)
    options = PipelineOptions(
        database_url=database_url, keep=keep, faults=fault_rates, **_timeouts(fault_rates)
    )
    events, expected = build_stream(customers, seed=seed)
    console = Console(stderr=as_json)
    if not verbose:  # injected faults make the client warn; the summary counts them
        logging.getLogger("ghlsync").setLevel(logging.ERROR)
    try:
        with demo_progress(console, len(events)) as bars:
            summary = asyncio.run(
                run_stream(events, expected, options, on_send=bars.sent, on_sync=bars.synced)
            )
    except PipelineError as exc:
        typer.echo(f"ghlsync demo: {exc}", err=True)
        raise typer.Exit(1) from None
    clock = bars.clock()
    if clock is not None:  # the summary's times are the bars' times
        summary.send_seconds, summary.sync_seconds = clock[0], clock[1] - clock[0]
    summary.planted = planted_deliveries(events)  # so the summary can say they were on purpose
    summary.repeats, summary.planned_dead_letters = expected.duplicates, expected.dead_letters
    if as_json:
        typer.echo(json.dumps(summary.to_dict(), indent=2))
    else:
        render_summary(summary, console)
    if keep and database_url is None:
        console.print(f"store kept: {summary.database_url}", markup=False)
    if not summary.ok:
        raise typer.Exit(1)


def _two_way(
    people: int, seed: int, database_url: str | None, *, keep: bool, as_json: bool, verbose: bool
) -> None:
    """`demo --two-way`: the three phases of `ghlsync.demo._twoway_demo`, then the verdict."""
    from rich.console import Console

    from ghlsync.demo import PipelineError, PipelineOptions
    from ghlsync.demo._twoway_demo import run_two_way
    from ghlsync.demo._twoway_report import render_two_way

    console = Console(stderr=as_json)
    if not verbose:
        logging.getLogger("ghlsync").setLevel(logging.ERROR)
    options = PipelineOptions(database_url=database_url, keep=keep)

    def phase(name: str) -> None:
        console.print(f"[dim]… {name}[/]")

    try:
        summary = asyncio.run(run_two_way(people, seed, options, on_phase=phase))
    except PipelineError as exc:
        typer.echo(f"ghlsync demo: {exc}", err=True)
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps(summary.to_dict(), indent=2))
    else:
        render_two_way(summary, console)
    if keep and database_url is None:
        console.print(f"store kept: {summary.database_url}", markup=False)
    if not summary.ok:
        raise typer.Exit(1)


def _parse_faults(text: str | None) -> dict[str, float]:
    if not text:
        return {}
    try:
        value: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"not JSON: {exc}", param_hint="--faults") from None
    if not isinstance(value, dict) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in value.values()
    ):
        raise typer.BadParameter(
            'expected an object of numbers, e.g. {"429": 0.05}', param_hint="--faults"
        )
    return {str(k): float(v) for k, v in value.items()}


def _timeouts(faults: dict[str, float]) -> dict[str, Any]:
    """With a "timeout" fault, the sandbox holds answers past a client timeout made short."""
    if not faults.get("timeout"):
        return {}
    held = faults.setdefault("timeout_seconds", _DEFAULT_TIMEOUT_SECONDS)
    return {"client_timeout": max(0.2, held / 2)}
