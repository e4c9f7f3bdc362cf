"""Tables for `ghlsync record`: what a support person reads first, at the top."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.table import Table

__all__ = ["print_record", "when"]

TIMELINE_ROWS = 50


def when(stamp: float | None) -> str:
    """Epoch seconds as `2026-12-06 01:23:45` (UTC); "-" for none."""
    if stamp is None:
        return "-"
    return datetime.fromtimestamp(float(stamp), UTC).strftime("%Y-%m-%d %H:%M:%S")


def _text(value: Any) -> str:
    return "-" if value is None or value == "" else str(value)


def print_record(result: Any) -> None:
    """The matches, or the one record."""
    console = Console()
    if not result.matches:
        console.print(f"No one in the store matches {result.query!r}.")
        return
    if result.record is None:
        _matches(console, result)
        return
    rec = result.record
    _person(console, rec["person"])
    _fields(console, rec["fields"])
    _tags(console, rec["tags"])
    _children(console, rec["children"])
    _pending(console, rec["pending"])
    _dead(console, rec["dead_letters"])
    _timeline(console, rec["timeline"])
    for error in (rec.get("live") or {}).get("errors", []):
        console.print(f"[yellow]live: {error}[/]")


def _matches(console: Console, result: Any) -> None:
    table = Table(title=f"{len(result.matches)} people match {result.query!r}: pick one")
    for column in ("location", "DripJobs id", "GHL contact id"):
        table.add_column(column)
    for person in result.matches:
        table.add_row(person.location_id, _text(person.source_id), _text(person.ghl_id))
    console.print(table)
    console.print("Run `ghlsync record <DripJobs id>` (or the GHL contact id) for one of them.")


def _person(console: Console, p: dict[str, Any]) -> None:
    console.print(f"[bold]{_text(p['name'])}[/]  {_text(p['email'])}  {_text(p['phone'])}")
    console.print(
        f"DripJobs customer {_text(p['dripjobs_id'])} ↔ GHL contact {_text(p['ghl_contact_id'])}"
        f"  (location {p['location_id']}; link: {_text(p['link'])} since {when(p['linked_at'])})"
    )
    if p["same_ghl_contact_as"]:
        console.print(f"Same GHL contact as DripJobs {', '.join(p['same_ghl_contact_as'])}")
    if p["deleted"]:
        console.print("[red]Deleted (a DripJobs delete was synced).[/]")


def _fields(console: Console, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    live = any("ghl_live" in r for r in rows)
    table = Table(title="Contact fields")
    columns = ["field", "DripJobs (last sent)", "GHL (last seen)"]
    columns += ["GHL now"] if live else []
    columns += ["owner", "changed at (source)", "synced at"]
    for column in columns:
        table.add_column(column)
    for r in rows:
        cells = [r["field"], _text(r["dripjobs"]), _text(r["ghl"])]
        cells += [_text(r.get("ghl_live"))] if live else []
        cells += [r["owner"], when(r["source_updated_at"]), when(r["synced_at"])]
        table.add_row(*cells)
    console.print(table)


def _tags(console: Console, tags: dict[str, Any]) -> None:
    line = f"Tags known in GHL: {', '.join(tags['known_in_ghl']) or '-'}"
    if tags.get("ghl_live") is not None:
        line += f"; GHL now: {', '.join(tags['ghl_live']) or '-'}"
    console.print(line)


def _children(console: Console, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    table = Table(title="Tasks, notes, appointments, opportunities")
    for column in ("type", "DripJobs id", "GHL id", "state", "DripJobs (last sent)", "GHL"):
        table.add_column(column)
    for r in rows:
        ghl = "deleted in GHL" if r["ghl_deleted"] else _summary(r["ghl"])
        table.add_row(
            r["type"],
            r["dripjobs_id"],
            _text(r["ghl_id"]),
            r["state"],
            _summary(r["dripjobs"]),
            ghl,
        )
    console.print(table)


def _summary(body: dict[str, Any] | None) -> str:
    if not body:
        return "-"
    keys = (
        *("title", "body", "dueDate", "completed", "startTime", "appointmentStatus"),
        *("name", "pipelineStageId", "status", "monetaryValue"),
    )
    return "; ".join(f"{k}={body[k]}" for k in keys if k in body)[:120] or "-"


def _pending(console: Console, rows: list[dict[str, Any]]) -> None:
    if not rows:
        console.print("Pending work: none")
        return
    table = Table(title="Pending work")
    for column in ("direction", "entity", "event", "status", "attempts", "due", "last error"):
        table.add_column(column)
    for r in rows:
        table.add_row(
            r["direction"],
            r["entity"],
            r["event"],
            r["status"],
            str(r["attempts"]),
            when(r["due_at"]),
            _text(r["last_error"])[:80],
        )
    console.print(table)


def _dead(console: Console, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    table = Table(title="Dead letters")
    for column in ("id", "entity", "when", "replayed", "reason"):
        table.add_column(column)
    for r in rows:
        table.add_row(str(r["id"]), r["entity"], when(r["at"]), when(r["replayed_at"]), r["reason"])
    console.print(table)


def _timeline(console: Console, rows: list[dict[str, Any]]) -> None:
    table = Table(
        title=f"Timeline (newest first{', first 50' if len(rows) > TIMELINE_ROWS else ''})"
    )
    for column in ("when", "direction", "entity", "action", "calls", "detail"):
        table.add_column(column)
    for r in rows[:TIMELINE_ROWS]:
        table.add_row(
            when(r["at"]),
            r["direction"],
            r["entity"],
            r["action"],
            str(r["calls"]),
            r["detail"][:80],
        )
    console.print(table)
