"""DripJobs CSV exports, read one row at a time.

DripJobs has no bulk API: its list exports (CSV) are the only way to take existing records
out. A row becomes the same flat, folded payload a Zap sends: every header is folded like the
receiver's keys (`fold_key`: "Customer Name" → `customer_name`), then renamed by the column
table (the preset's known export columns, plus the config's `backfill.columns`), so one
mapping serves webhooks and exports alike.

The file is streamed (`csv` over the open file): memory stays flat however many rows it has.
Row numbers are the spreadsheet's: the header is row 1, the first record row 2, as a person
sees them when they open the file.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from ghlsync.dripjobs._keys import fold_key

__all__ = [
    "EXPORT_COLUMNS",
    "CsvFormatError",
    "CsvRow",
    "column_table",
    "count_rows",
    "file_fingerprint",
    "read_rows",
]

# Folded export header → the DripJobs field name the mapping reads. Only columns whose folded
# name differs from the field need an entry. Sources (docs/backfill.md, "Column names"):
# the Sales List view (`dripjobsContactId`, `customerName`, `source`, `dealStage`,
# `lastChange`, `dealId`) and the Jobs List columns ("Customer Name", "Deal Stage",
# "Lead Source", "Job Address", "Changed Date"); the rest are the usual spellings of a CRM
# export, not confirmed for DripJobs: `backfill.columns` in ghlsync.yaml adds or overrides.
EXPORT_COLUMNS: Mapping[str, str] = {
    "dripjobs_contact_id": "customer_id",
    "contact_id": "customer_id",
    "customer_number": "customer_id",
    "client_id": "customer_id",
    "customer": "customer_name",
    "client_name": "customer_name",
    "contact_name": "customer_name",
    "full_name": "customer_name",
    "email_address": "email",
    "customer_email": "email",
    "phone_number": "phone",
    "customer_phone": "phone",
    "mobile": "phone",
    "mobile_phone": "phone",
    "cell_phone": "phone",
    "source": "lead_source",
    "job_address": "address",
    "street_address": "address",
    "address_1": "address",
    "address1": "address",
    "street": "address",
    "zip_code": "zip",
    "postal_code": "zip",
    "company": "company_name",
    "business_name": "company_name",
    "stage": "deal_stage",
    "last_change": "updated_at",
    "changed_date": "updated_at",
    "last_updated": "updated_at",
    "job_stage": "project_stage",
}

_CHUNK = 1 << 20


class CsvFormatError(ValueError):
    """The file is not a CSV this reader can use (no header, not UTF-8, ...)."""


@dataclass(frozen=True, slots=True)
class CsvRow:
    """One record row: its spreadsheet row number and its folded, renamed fields."""

    number: int
    fields: dict[str, str]


def column_table(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The preset's export columns with `extra` (header → field) over them, both folded."""
    table = dict(EXPORT_COLUMNS)
    for header, name in (extra or {}).items():
        table[fold_key(header)] = fold_key(name)
    return table


def file_fingerprint(path: Path) -> str:
    """SHA-256 of the file's bytes: the same export gives the same checkpoint."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def count_rows(path: Path) -> int:
    """How many record rows the file has (one streaming pass; quoted newlines counted right)."""
    with _open(path) as handle:
        reader = csv.reader(handle)
        next(reader, None)
        return sum(1 for row in reader if any(cell.strip() for cell in row))


def read_rows(
    path: Path, columns: Mapping[str, str] | None = None, *, start: int = 2
) -> Iterator[CsvRow]:
    """The file's record rows from spreadsheet row `start` on, one at a time.

    Empty cells are left out (a blank cell says nothing, as an absent Zap field); blank lines
    are skipped but still counted, so row numbers stay those of the spreadsheet.
    """
    table = column_table() if columns is None else dict(columns)
    with _open(path) as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if not header or not any(cell.strip() for cell in header):
            raise CsvFormatError(f"{path.name}: no header row (the first line names the columns)")
        names = _names(header, table)
        for number, cells in enumerate(reader, start=2):
            if number < start or not any(cell.strip() for cell in cells):
                continue
            yield CsvRow(number, _fields(names, cells))


def _names(header: list[str], table: Mapping[str, str]) -> list[str]:
    folded = [fold_key(cell.lstrip("\ufeff")) for cell in header]
    return [table.get(name, name) for name in folded]


def _fields(names: list[str], cells: list[str]) -> dict[str, str]:
    """Cells by field name; on a clash (two columns meaning one field) the first filled wins."""
    fields: dict[str, str] = {}
    for name, cell in zip(names, cells, strict=False):
        value = cell.strip()
        if name and value and name not in fields:
            fields[name] = value
    return fields


def _open(path: Path) -> _Checked:
    try:
        raw = path.open("rb")
    except OSError as exc:
        raise CsvFormatError(f"cannot read {path}: {exc.strerror or exc}") from None
    # utf-8-sig drops the byte-order mark spreadsheet programs put at the start.
    text = io.TextIOWrapper(raw, encoding="utf-8-sig", errors="strict", newline="")
    return _Checked(text, path)


class _Checked:
    """The text stream, turning a decoding error into a `CsvFormatError` naming the file."""

    def __init__(self, inner: io.TextIOWrapper, path: Path) -> None:
        self._inner = inner
        self._path = path

    def __enter__(self) -> _Checked:
        return self

    def __exit__(self, *exc: object) -> None:
        self._inner.close()

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        try:
            return next(self._inner)
        except UnicodeDecodeError as exc:
            raise CsvFormatError(
                f"{self._path.name} is not UTF-8 text ({exc.reason} at byte {exc.start}); "
                "export it again as CSV UTF-8"
            ) from None
