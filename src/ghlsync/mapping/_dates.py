"""Parsing the date formats Zapier and DripJobs send, and writing the ISO 8601 GHL wants."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

_DATE_ONLY_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_EPOCH = re.compile(r"^-?\d{9,13}(\.\d+)?$")
_MS_THRESHOLD = 100_000_000_000  # beyond year 5138 in seconds, so it must be milliseconds

_DATE_FORMATS = ("%m/%d/%Y", "%m-%d-%Y", "%Y/%m/%d", "%B %d, %Y", "%b %d, %Y", "%B %d %Y")
_TIME_FORMATS = ("%H:%M", "%H:%M:%S", "%I:%M %p", "%I:%M:%S %p", "%I %p", "%I:%M%p", "%I%p")


@dataclass(frozen=True)
class Moment:
    """A parsed value: an aware date-time, or a calendar date without a time."""

    at: datetime | None = None
    day: date | None = None


class DateFormatError(ValueError):
    """The text is no date format we know."""


def parse(value: object, zone: ZoneInfo) -> Moment:
    """Parse ISO 8601, US `MM/DD/YYYY [h:mm AM]`, `Month D, YYYY` or epoch (s or ms).

    A date-time without an offset is read in `zone`.
    """
    if isinstance(value, bool):
        raise DateFormatError
    if isinstance(value, int | float):
        return Moment(at=_from_epoch(float(value)))
    text = " ".join(str(value).split())
    if _EPOCH.match(text):
        return Moment(at=_from_epoch(float(text)))
    if _DATE_ONLY_ISO.match(text):
        return Moment(day=date.fromisoformat(text))
    parsed = _iso(text) or _formatted(text)
    if parsed is None:
        raise DateFormatError
    if isinstance(parsed, datetime):
        return Moment(at=parsed if parsed.tzinfo else parsed.replace(tzinfo=zone))
    return Moment(day=parsed)


def instant(value: object, zone: ZoneInfo) -> datetime:
    """`value` as an aware UTC date-time; a bare date is midnight in `zone`.

    Raises what `parse` raises, or `OverflowError` near either end of the calendar.
    """
    if type(value) is int or type(value) is float:  # an epoch, the most common: no Moment
        return _from_epoch(float(value)).astimezone(UTC)
    return to_datetime(parse(value, zone), zone, 0).astimezone(UTC)


def _from_epoch(seconds: float) -> datetime:
    if abs(seconds) >= _MS_THRESHOLD:
        seconds /= 1000
    return datetime.fromtimestamp(seconds, tz=UTC)


def _iso(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        return None


def _formatted(text: str) -> datetime | date | None:
    # strptime matches month names and AM/PM case-insensitively.
    for date_format in _DATE_FORMATS:
        try:
            return datetime.strptime(text, date_format).date()
        except ValueError:
            pass
        for time_format in _TIME_FORMATS:
            try:
                return datetime.strptime(text, f"{date_format} {time_format}")
            except ValueError:
                continue
    return None


def to_datetime(moment: Moment, zone: ZoneInfo, default_hour: int) -> datetime:
    """An aware date-time; a bare date becomes `default_hour`:00 on that day in `zone`."""
    if moment.at is not None:
        return moment.at
    assert moment.day is not None
    return datetime.combine(moment.day, time(default_hour), tzinfo=zone)


def iso(at: datetime, zone: ZoneInfo) -> str:
    """ISO 8601 with the offset of `zone`, to the second: `2026-12-01T09:00:00-05:00`.

    Raises `OverflowError` for a time that has no UTC equivalent in years 1 to 9999
    (`9999-12-31T23:59:59-12:00`): whatever reads it next, in UTC, could not hold it.
    """
    at.astimezone(UTC)
    return at.astimezone(zone).isoformat(timespec="seconds")


def due_default(now: float, zone: ZoneInfo, days: int, hour: int) -> datetime:
    """`days` days after today in `zone`, at `hour`:00 (a task due date GHL requires)."""
    today = datetime.fromtimestamp(now, tz=zone).date()
    return datetime.combine(today + timedelta(days=days), time(hour), tzinfo=zone)
