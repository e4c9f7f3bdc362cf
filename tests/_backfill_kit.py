"""Helpers for the backfill tests: a DripJobs customers export with every awkward row, the
GHL contacts that already exist, and the end state both should give.

`make_export(path, n)` writes `n` good customers plus:
- repeats: the same customer id on a later row (a newer city) — one contact;
- twins: a second customer id with the email of an earlier one — one GHL contact;
- bad rows: a bad email, a row with no id/email/phone, a row with only a name;
- people already in GHL (`EXISTING_*`): `seed_existing` creates them first, so their rows
  must be linked, never created again; one customer matches two contacts (ambiguous).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

HEADER = ["Customer ID", "Customer Name", "Email Address", "Phone Number", "City", "Source"]


def phone(i: int) -> str:
    """A valid US number, as DripJobs shows it."""
    return f"(512) {200 + i // 10000:03d}-{i % 10000:04d}"


def e164(i: int) -> str:
    """The same number as GHL stores it."""
    return f"+1512{200 + i // 10000:03d}{i % 10000:04d}"


@dataclass
class Export:
    """What a generated export holds, and what GHL must look like after importing it."""

    path: Path
    good: int
    existing_by_email: list[int] = field(default_factory=list)
    existing_by_phone: list[int] = field(default_factory=list)
    ambiguous: int = 0
    repeats: list[int] = field(default_factory=list)
    twins: list[int] = field(default_factory=list)
    bad_rows: dict[int, str] = field(default_factory=dict)  # spreadsheet row → why

    @property
    def contacts_after(self) -> int:
        """GHL contacts after the import: every good customer once (twins share one), the
        ambiguous customer's two contacts untouched, plus nothing else."""
        return self.good - 1 + 2  # the ambiguous customer creates nothing; its two stay

    @property
    def created(self) -> int:
        """Contacts the import itself creates."""
        return self.good - 1 - len(self.existing_by_email) - len(self.existing_by_phone)


def make_export(path: Path, good: int, *, existing: int = 10) -> Export:
    """Write the export (`good` customers numbered 1..good, then the awkward rows)."""
    export = Export(path, good)
    export.existing_by_email = list(range(1, existing + 1))
    export.existing_by_phone = list(range(existing + 1, 2 * existing + 1))
    export.ambiguous = 2 * existing + 1
    rows: list[list[str]] = []
    for i in range(1, good + 1):
        rows.append(
            [f"dj{i}", f"Pat Customer{i}", f"pat{i}@example.com", phone(i), "Austin", "Google"]
        )
    for i in (3, good // 2, good - 1):
        rows.append(
            [f"dj{i}", f"Pat Customer{i}", f"pat{i}@example.com", phone(i), "Dallas", "Google"]
        )
        export.repeats.append(i)
    for i in (5, good // 3):
        rows.append([f"twin{i}", f"Pat Twin{i}", f"pat{i}@example.com", "", "Austin", ""])
        export.twins.append(i)
    first_bad = len(rows) + 2
    rows.append(["bad1", "Bad Email", "not-an-email", "", "Austin", ""])
    rows.append(["", "No Key At All", "", "", "Austin", ""])
    rows.append(["bad3", "Only A Name", "", "", "", ""])
    export.bad_rows = {
        first_bad: "is not an email address",
        first_bad + 1: "no customer_id, email or phone",
        first_bad + 2: "no email or phone",
    }
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerows(rows)
    return export


def _customer(i: int, city: str) -> list[str]:
    return [f"dj{i}", f"Pat Customer{i}", f"pat{i}@example.com", phone(i), city, "Google"]


def seed_existing(state: Any, location_id: str, export: Export) -> dict[str, str]:
    """Create the contacts that were in GHL before the import; their ids by key."""
    location = state.location(location_id)
    ids: dict[str, str] = {}
    for i in export.existing_by_email:
        ids[f"email{i}"] = _add(state, location, email=f"pat{i}@example.com", firstName="Old")
    for i in export.existing_by_phone:
        ids[f"phone{i}"] = _add(state, location, phone=e164(i), firstName="Old")
    a = export.ambiguous
    ids["amb_email"] = _add(state, location, email=f"pat{a}@example.com", firstName="One")
    ids["amb_phone"] = _add(state, location, phone=e164(a), email="other@example.com")
    return ids


def _add(state: Any, location: Any, **fields: Any) -> str:
    from ghlsync.sandbox._contacts import create

    with state.lock:
        contact = create(state, location, fields)
    return str(contact["id"])


def write_config(path: Path, **sections: Any) -> Path:
    """The embedded preset with some sections overridden (e.g. worker, backfill)."""
    from ghlsync.mapping._load import preset_text

    raw = yaml.safe_load(preset_text())
    for name, values in sections.items():
        raw[name] = {**raw.get(name, {}), **values}
    path.write_text(yaml.safe_dump(raw, sort_keys=False), "utf-8")
    return path
