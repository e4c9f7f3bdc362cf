"""Reading DripJobs CSV exports: folded and renamed headers, spreadsheet row numbers,
streaming from a row, clear errors; and a row → a keyed, stamped, mapped delivery or a
rejection with its reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from ghlsync.backfill._rows import Prepared, Rejected, prepare
from ghlsync.dripjobs._csv import (
    CsvFormatError,
    column_table,
    count_rows,
    file_fingerprint,
    read_rows,
)
from ghlsync.mapping import AppConfig, Mapper


def _write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def test_headers_fold_like_webhook_keys_and_export_names_are_renamed(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "sales.csv",
        "\ufeffdripjobsContactId,customerName,Email Address,Phone Number,source,dealStage\r\n"
        "42,Ann Lee,ANN@example.com,(512) 201-1001,Google,Won\r\n",
    )
    [row] = list(read_rows(path))
    assert row.number == 2
    assert row.fields == {
        "customer_id": "42",
        "customer_name": "Ann Lee",
        "email": "ANN@example.com",
        "phone": "(512) 201-1001",
        "lead_source": "Google",
        "deal_stage": "Won",
    }


def test_config_columns_add_and_override(tmp_path: Path) -> None:
    path = _write(tmp_path / "x.csv", "Client Ref,Source\nA7,Referral\n")
    table = column_table({"Client Ref": "customer_id", "source": "referral_source"})
    [row] = list(read_rows(path, table))
    assert row.fields == {"customer_id": "A7", "referral_source": "Referral"}


def test_rows_keep_spreadsheet_numbers_and_stream_from_a_row(tmp_path: Path) -> None:
    # A quoted newline stays one row; a blank line is skipped but still counts.
    path = _write(
        tmp_path / "x.csv",
        'id,note\n1,"two\nlines"\n\n3,c\n4,\n5,e\n',
    )
    rows = list(read_rows(path))
    assert [(r.number, r.fields.get("note")) for r in rows] == [
        (2, "two\nlines"),
        (4, "c"),
        (5, None),
        (6, "e"),
    ]
    assert [r.number for r in read_rows(path, start=5)] == [5, 6]
    assert count_rows(path) == 4


def test_unusable_files_say_why(tmp_path: Path) -> None:
    with pytest.raises(CsvFormatError, match="no header row"):
        list(read_rows(_write(tmp_path / "empty.csv", "")))
    latin = _write(tmp_path / "latin.csv", "name\nJosé\n", encoding="latin-1")
    with pytest.raises(CsvFormatError, match="not UTF-8"):
        list(read_rows(latin))
    with pytest.raises(CsvFormatError, match="cannot read"):
        list(read_rows(tmp_path / "missing.csv"))


def test_fingerprint_follows_content(tmp_path: Path) -> None:
    a = _write(tmp_path / "a.csv", "id\n1\n")
    b = _write(tmp_path / "b.csv", "id\n1\n")
    c = _write(tmp_path / "c.csv", "id\n2\n")
    assert file_fingerprint(a) == file_fingerprint(b) != file_fingerprint(c)


def _row(tmp_path: Path, header: str, line: str) -> object:
    path = _write(tmp_path / "r.csv", f"{header}\n{line}\n")
    [row] = list(read_rows(path))
    return prepare(row, "customer.updated", Mapper(AppConfig.default()), "2026-01-02T03:04:05Z")


def test_a_good_row_is_keyed_mapped_and_stamped_with_the_export_time(tmp_path: Path) -> None:
    got = _row(tmp_path, "Customer ID,Name,Email,Phone", "9,Ann Lee,Ann@Example.com,5122011001")
    assert isinstance(got, Prepared)
    assert (got.entity_type, got.source_id) == ("contact", "9")
    assert (got.email, got.phone) == ("ann@example.com", "+15122011001")
    assert got.payload["updated_at"] == "2026-01-02T03:04:05Z"
    assert got.source_updated_at == 1767323045.0


def test_a_row_without_customer_id_is_keyed_by_email_then_phone(tmp_path: Path) -> None:
    got = _row(tmp_path, "Customer Name,Email", "Ann Lee,Ann@Example.com")
    assert isinstance(got, Prepared) and got.source_id == "email:ann@example.com"
    got = _row(tmp_path, "Customer Name,Phone", "Ann Lee,(512) 201-1001")
    assert isinstance(got, Prepared) and got.source_id == "phone:5122011001"


@pytest.mark.parametrize(
    ("line", "reason", "error"),
    [
        ("1,Ann,not-an-email,", "is not an email address", "MappingError"),
        ("1,Ann,,12", "is not a valid phone number", "MappingError"),
        ("1,Ann,,", "no email or phone", "BackfillRowError"),
        (",Ann,,", "no customer_id, email or phone", "BackfillRowError"),
    ],
)
def test_bad_rows_are_rejected_with_a_reason(
    tmp_path: Path, line: str, reason: str, error: str
) -> None:
    got = _row(tmp_path, "Customer ID,Name,Email,Phone", line)
    assert isinstance(got, Rejected)
    assert got.number == 2 and reason in got.reason and got.error_class == error
