"""Table-driven cases for every transform of the mapping language."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from ghlsync.mapping import _dates
from ghlsync.mapping._transforms import (
    SINGLE,
    Context,
    TransformFailed,
    apply_chain,
    join,
    name_split,
)

NY = Context(input_zone=ZoneInfo("America/New_York"), output_zone=ZoneInfo("America/New_York"))
UTC_OUT = Context(input_zone=ZoneInfo("America/Chicago"), output_zone=ZoneInfo("UTC"))
UK = Context(phone_region="GB")


def run(name: str, value: object, ctx: Context = NY) -> object:
    return apply_chain([name], value, ctx)


@pytest.mark.parametrize(
    ("value", "ctx", "expected"),
    [
        ("(212) 555-0100", NY, "+12125550100"),
        ("212.555.0100", NY, "+12125550100"),
        ("+1 212 555 0100", NY, "+12125550100"),
        ("1-212-555-0100", NY, "+12125550100"),
        (2125550100, NY, "+12125550100"),
        ("020 7946 0958", UK, "+442079460958"),
        ("+44 20 7946 0958", NY, "+442079460958"),
    ],
)
def test_phone_e164(value: object, ctx: Context, expected: str) -> None:
    assert run("phone_e164", value, ctx) == expected


@pytest.mark.parametrize("value", ["555-0100", "12345", "not a phone", "+1 000 000 0000"])
def test_phone_e164_rejects_invalid_numbers(value: str) -> None:
    with pytest.raises(TransformFailed, match="phone number"):
        run("phone_e164", value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("  Ann.Lee@Example.COM ", "ann.lee@example.com"),
        ("a+tag@sub.example.co", "a+tag@sub.example.co"),
    ],
)
def test_email_normalises(value: str, expected: str) -> None:
    assert run("email", value) == expected


@pytest.mark.parametrize("value", ["ann", "ann@", "@example.com", "ann@example", "a b@c.com"])
def test_email_rejects_bad_shapes(value: str) -> None:
    with pytest.raises(TransformFailed, match="email"):
        run("email", value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Ann Lee", ("Ann", "Lee")),
        ("  Mary Ann   van Dyke ", ("Mary", "Ann   van Dyke")),
        ("Cher", ("Cher", None)),
    ],
)
def test_name_split(value: str, expected: tuple[str | None, str | None]) -> None:
    assert name_split(value.strip()) == expected


@pytest.mark.parametrize(
    ("values", "separator", "expected"),
    [
        (["Ann", "Lee"], " ", "Ann Lee"),
        (["Ann", ""], " ", "Ann"),
        (["1 Main St", None, "NY", 10001], ", ", "1 Main St, NY, 10001"),
        (["", None], " ", None),
    ],
)
def test_join(values: list[object], separator: str, expected: str | None) -> None:
    assert join(values, separator) == expected


@pytest.mark.parametrize(
    ("value", "ctx", "expected"),
    [
        # ISO with an offset keeps the instant; written in the output zone
        ("2026-12-01T15:00:00Z", NY, "2026-12-01T10:00:00-05:00"),
        ("2026-07-01T15:00:00+00:00", NY, "2026-07-01T11:00:00-04:00"),
        # naive: read in the input zone
        ("2026-12-01T10:00:00", NY, "2026-12-01T10:00:00-05:00"),
        ("2026-12-01 10:00", UTC_OUT, "2026-12-01T16:00:00+00:00"),
        # date only: the default hour on that day
        ("2026-12-01", NY, "2026-12-01T09:00:00-05:00"),
        ("12/01/2026", NY, "2026-12-01T09:00:00-05:00"),
        # US formats with times
        ("12/01/2026 2:30 PM", NY, "2026-12-01T14:30:00-05:00"),
        ("12/01/2026 2:30 pm", NY, "2026-12-01T14:30:00-05:00"),
        ("12/01/2026 14:30", NY, "2026-12-01T14:30:00-05:00"),
        ("December 1, 2026", NY, "2026-12-01T09:00:00-05:00"),
        ("Dec 1, 2026 2:30 PM", NY, "2026-12-01T14:30:00-05:00"),
        # epoch seconds and milliseconds
        (1796144400, NY, "2026-12-01T12:00:00-05:00"),
        ("1796144400", NY, "2026-12-01T12:00:00-05:00"),
        (1796144400000, NY, "2026-12-01T12:00:00-05:00"),
    ],
)
def test_datetime(value: object, ctx: Context, expected: str) -> None:
    assert run("datetime", value, ctx) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("12/01/2026", "2026-12-01"),
        ("2026-12-01", "2026-12-01"),
        # 03:00 UTC is still the previous evening in New York
        ("2026-12-02T03:00:00Z", "2026-12-01"),
    ],
)
def test_date(value: str, expected: str) -> None:
    assert run("date", value) == expected


@pytest.mark.parametrize("value", ["13/45/2026", "tomorrow", "2026-02-30", True])
def test_dates_reject_unknown_formats(value: object) -> None:
    with pytest.raises(TransformFailed, match="is not a date"):
        run("datetime", value)


def test_due_default_is_days_later_at_the_hour() -> None:
    ny = ZoneInfo("America/New_York")
    # 2026-11-30 23:30 in New York is already Dec 1 in UTC: "today" is the local day
    now = 1796099400.0
    due = _dates.due_default(now, ny, days=1, hour=9)
    assert _dates.iso(due, ny) == "2026-12-01T09:00:00-05:00"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("done", True),
        ("Complete", True),
        ("COMPLETED", True),
        ("closed", True),
        ("true", True),
        (True, True),
        (1, True),
        ("open", False),
        ("pending", False),
        ("in progress", False),
        (False, False),
        (0, False),
    ],
)
def test_status_completed(value: object, expected: bool) -> None:
    assert run("status_completed", value) is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Scheduled", "confirmed"),
        ("canceled", "cancelled"),
        ("Cancelled", "cancelled"),
        ("No Show", "noshow"),
        ("no-show", "noshow"),
        ("completed", "showed"),
        ("pending", "new"),
    ],
)
def test_appointment_status(value: str, expected: str) -> None:
    assert run("appointment_status", value) == expected


def test_appointment_status_rejects_unknown_words() -> None:
    with pytest.raises(TransformFailed, match=r"known: .*cancelled"):
        run("appointment_status", "postponed")


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("strip", "  Ann  ", "Ann"),
        ("strip", 10001, "10001"),
        ("strip", 10001.0, "10001"),
        ("strip", True, True),
        ("lower", " Google ADS ", "google ads"),
        ("tag", "  Google   Ads ", "google ads"),
    ],
)
def test_text_transforms(name: str, value: object, expected: object) -> None:
    assert run(name, value) == expected


def test_user_looks_up_the_users_table() -> None:
    ctx = Context(users={"Jane Roe": "u_1"})
    assert run("user", "Jane Roe", ctx) == "u_1"
    assert run("user", "jane roe", ctx) == "u_1"
    assert run("user", "Nobody", ctx) is None


@pytest.mark.parametrize("value", [None, "", "   "])
def test_blank_values_are_left_out(value: object) -> None:
    for name in SINGLE:
        assert apply_chain([name], value, NY) is None


@pytest.mark.parametrize("value", [{"a": 1}, ["x"]])
def test_structured_values_are_rejected(value: object) -> None:
    with pytest.raises(TransformFailed, match="single value"):
        apply_chain(["strip"], value, NY)


def test_chains_apply_in_order() -> None:
    assert apply_chain(["strip", "lower"], "  ABC ", NY) == "abc"
