"""The transforms a field rule can name. A small, closed set: no expressions, no eval.

Single-value transforms take one present value and return the GHL value, or `None` when the
value means "nothing" (the field is then left out). `name_split`, `name_join` and `join` work
on several fields at once and stand alone in a rule. A value that cannot be converted raises
`TransformFailed(reason)`; the mapper turns it into a `MappingError` naming the field.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import phonenumbers

from ghlsync.mapping import _dates

MULTI_FIELD = frozenset({"name_split", "name_join", "join"})

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]{2,}$")
_COMPLETED = frozenset({"done", "complete", "completed", "closed", "true", "yes", "y", "1"})
_APPOINTMENT_STATUS = {
    "new": "new", "pending": "new", "requested": "new", "unconfirmed": "new",
    "scheduled": "confirmed", "confirmed": "confirmed", "booked": "confirmed",
    "rescheduled": "confirmed",
    "canceled": "cancelled", "cancelled": "cancelled",
    "showed": "showed", "completed": "showed", "complete": "showed", "done": "showed",
    "attended": "showed",
    "noshow": "noshow", "missed": "noshow",
    "invalid": "invalid",
}  # fmt: skip


class TransformFailed(ValueError):
    """A value the transform cannot convert; `reason` completes "<field>: <value> ..."."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True)
class Context:
    """What transforms need from the config."""

    phone_region: str = "US"
    input_zone: ZoneInfo = field(default_factory=lambda: ZoneInfo("America/New_York"))
    output_zone: ZoneInfo = field(default_factory=lambda: ZoneInfo("America/New_York"))
    default_hour: int = 9
    users: Mapping[str, str] = field(default_factory=dict)


def is_blank(value: object) -> bool:
    """Zapier sends "" (or nothing) for a field the trigger did not fill."""
    return value is None or (isinstance(value, str) and not value.strip())


def strip(value: object, ctx: Context) -> object:
    """Text without surrounding space; numbers become text, booleans stay booleans."""
    if isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def lower(value: object, ctx: Context) -> object:
    """Lower-case text."""
    return str(strip(value, ctx)).lower()


def tag(value: object, ctx: Context) -> object:
    """A GHL tag: lower-case (GHL stores tags lower-case), single spaces."""
    return " ".join(str(strip(value, ctx)).lower().split())


def email(value: object, ctx: Context) -> object:
    """A lower-case address of the shape `name@domain.tld`."""
    text = str(value).strip().lower()
    if not _EMAIL.match(text):
        raise TransformFailed("is not an email address")
    return text


def phone_e164(value: object, ctx: Context) -> object:
    """E.164 (`+15551234567`); numbers without a country code are read in the default region."""
    e164, problem = _e164(str(strip(value, ctx)), ctx.phone_region)
    if problem is not None:
        raise TransformFailed(problem)
    return e164


@functools.lru_cache(maxsize=8192)
def _e164(text: str, region: str) -> tuple[str, str | None]:
    """(E.164, None) or ("", what is wrong). Cached: a customer's every event carries the same
    number, and parsing it was the mapper's largest cost (docs/benchmarks.md)."""
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as error:
        return "", f"is not a phone number ({error})"
    if not phonenumbers.is_valid_number(number):
        return "", f"is not a valid phone number (default region {region})"
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164), None


def _moment(value: object, ctx: Context) -> _dates.Moment:
    try:
        return _dates.parse(value, ctx.input_zone)
    except (_dates.DateFormatError, ValueError, OverflowError, OSError) as error:
        raise TransformFailed(
            "is not a date (expected ISO 8601, MM/DD/YYYY [h:mm AM], 'Month D, YYYY' or epoch)"
        ) from error


_OUT_OF_RANGE = "is outside the calendar in UTC or the output time zone (years 1 to 9999)"


def datetime_(value: object, ctx: Context) -> object:
    """ISO 8601 with offset; a bare date means `defaults.task_due_hour` o'clock that day."""
    moment = _moment(value, ctx)
    at = _dates.to_datetime(moment, ctx.input_zone, ctx.default_hour)
    try:
        return _dates.iso(at, ctx.output_zone)
    except OverflowError:  # 9999-12-31T23:59:59-12:00 has no time in UTC or east of it
        raise TransformFailed(_OUT_OF_RANGE) from None


def date_(value: object, ctx: Context) -> object:
    """`YYYY-MM-DD`; a date-time becomes its date in the output time zone."""
    moment = _moment(value, ctx)
    if moment.day is not None:
        return moment.day.isoformat()
    assert moment.at is not None
    try:
        return moment.at.astimezone(ctx.output_zone).date().isoformat()
    except OverflowError:
        raise TransformFailed(_OUT_OF_RANGE) from None


def status_completed(value: object, ctx: Context) -> object:
    """True for done / complete / completed / closed / true / yes / 1, else False."""
    if isinstance(value, bool):
        return value
    return str(strip(value, ctx)).lower() in _COMPLETED


def appointment_status(value: object, ctx: Context) -> object:
    """DripJobs' words for an appointment's state → GHL's `appointmentStatus` enum."""
    word = re.sub(r"[\s_-]+", "", str(value).lower())
    if word not in _APPOINTMENT_STATUS:
        known = ", ".join(sorted({*_APPOINTMENT_STATUS, "no show"} - {"noshow"}))
        raise TransformFailed(f"is not an appointment status; known: {known}")
    return _APPOINTMENT_STATUS[word]


def user(value: object, ctx: Context) -> object | None:
    """A GHL user id from the `users:` table (exact, then case-insensitive); unknown → left out."""
    text = str(strip(value, ctx))
    if text in ctx.users:
        return ctx.users[text]
    folded = {name.casefold(): user_id for name, user_id in ctx.users.items()}
    return folded.get(text.casefold())


SINGLE: dict[str, Callable[[object, Context], object | None]] = {
    "strip": strip,
    "lower": lower,
    "tag": tag,
    "email": email,
    "phone_e164": phone_e164,
    "datetime": datetime_,
    "date": date_,
    "status_completed": status_completed,
    "appointment_status": appointment_status,
    "user": user,
}


def apply_chain(names: Sequence[str], value: object, ctx: Context) -> object | None:
    """Run single-value transforms in order; `None` (or blank text) means "leave it out"."""
    if isinstance(value, dict | list | tuple):
        raise TransformFailed("is a list or an object; a single value was expected")
    result: object | None = value
    for name in names:
        if is_blank(result):
            return None
        result = SINGLE[name](result, ctx)
    return None if is_blank(result) else result


def name_split(value: object) -> tuple[str | None, str | None]:
    """ "Ann Lee" → ("Ann", "Lee"); "Mary Ann van Dyke" → ("Mary", "Ann van Dyke")."""
    parts = str(value).split(None, 1)
    first = parts[0] if parts else None
    last = parts[1].strip() if len(parts) > 1 else None
    return first, last


def join(values: Sequence[object], separator: str) -> str | None:
    """The present values, stripped, joined; `None` when none is present."""
    present = [str(strip(v, Context())) for v in values if not is_blank(v)]
    return separator.join(present) or None
