"""Durations (`3d`, `1d 2h`, `90m`) and relative dates (`+1d 09:00`, `{appointment_start} -1d`).

A relative date is read in the location's time zone, from a base moment: the time the
recipe's trigger fired (plus its `after.wait`), or the date in a field named first in braces.
Its parts apply in this order: whole days (calendar days: 09:00 stays 09:00 across a DST
change), then the time of day `HH:MM` if given, then hours and minutes.

    "+0d +5m"                      five minutes after the base
    "+1d 09:00"                    the next day at 09:00
    "{appointment_start} -1d"      one day before the appointment, same time
    "{appointment_start} -1d 17:00"  the evening before
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

_UNIT_SECONDS = {"w": 604800.0, "d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
_DURATION_PART = re.compile(
    r"(\d+(?:\.\d+)?)\s*(weeks?|w|days?|d|hours?|h|minutes?|mins?|m|seconds?|s)(?![a-z])"
)
_ANCHOR = re.compile(r"^\{\s*([A-Za-z_][A-Za-z0-9_.]*)\s*\}")
_OFFSET = re.compile(r"^([+-])(\d+)([wdhm])$")
_CLOCK = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


def parse_duration(text: str) -> float:
    """`"3d"`, `"1d 2h"`, `"90m"`, `"45s"` → seconds; ValueError says what is allowed."""
    cleaned = text.strip().lower()
    parts = _DURATION_PART.findall(cleaned)
    if not parts or _DURATION_PART.sub("", cleaned).strip():
        raise ValueError(
            f"{text!r} is not a duration; use numbers with w, d, h, m or s, e.g. 3d or 1d 12h"
        )
    return sum(float(n) * _UNIT_SECONDS[unit[0]] for n, unit in parts)


@dataclass(frozen=True, slots=True)
class RelativeDate:
    """A parsed relative date: anchor field (None: the base), day/minute offsets, clock."""

    anchor: str | None
    days: int
    minutes: int
    at: time | None

    def resolve(self, base: float, fields: Mapping[str, Any], zone: ZoneInfo) -> datetime:
        """The moment, aware, in `zone`; ValueError when the anchor field is missing or bad."""
        start = _anchor_time(self.anchor, fields, zone) if self.anchor else _at(base, zone)
        moment = start + timedelta(days=self.days)  # wall-clock days in the zone
        if self.at is not None:
            moment = moment.replace(hour=self.at.hour, minute=self.at.minute, second=0)
        moment = moment.replace(tzinfo=zone)  # re-read the offset after DST-crossing days
        return (moment.astimezone(UTC) + timedelta(minutes=self.minutes)).astimezone(zone)


def looks_relative(text: str) -> bool:
    """True when `text` is written as a relative date (starts with `+`, `-` or `{field}`)."""
    stripped = text.strip()
    return stripped.startswith(("+", "-")) or bool(_ANCHOR.match(stripped))


def parse_relative(text: str) -> RelativeDate:
    """Parse `"+1d 09:00"`, `"{field} -1d"`...; ValueError says what is allowed."""
    rest = text.strip()
    anchor = None
    found = _ANCHOR.match(rest)
    if found:
        anchor, rest = found.group(1), rest[found.end() :]
    days = minutes = 0
    at: time | None = None
    for token in rest.split():
        offset, clock = _OFFSET.match(token), _CLOCK.match(token)
        if offset:
            sign = -1 if offset.group(1) == "-" else 1
            amount, unit = int(offset.group(2)), offset.group(3)
            if unit in "wd":
                days += sign * amount * (7 if unit == "w" else 1)
            else:
                minutes += sign * amount * (60 if unit == "h" else 1)
        elif clock and at is None:
            at = time(int(clock.group(1)), int(clock.group(2)))
        else:
            raise ValueError(
                f"{text!r} is not a relative date: {token!r} is neither an offset like +1d, "
                "-2h, +30m nor a time of day like 09:00"
            )
    return RelativeDate(anchor, days, minutes, at)


def _at(epoch: float, zone: ZoneInfo) -> datetime:
    return datetime.fromtimestamp(epoch, tz=zone).replace(microsecond=0)


def _anchor_time(name: str, fields: Mapping[str, Any], zone: ZoneInfo) -> datetime:
    value = fields.get(name)
    if value in (None, ""):
        raise ValueError(f"{name}: is missing, so a date relative to it cannot be worked out")
    try:
        parsed = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{name}: {value!r} is not an ISO 8601 date or date-time") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone)
    return parsed.astimezone(zone).replace(microsecond=0)
