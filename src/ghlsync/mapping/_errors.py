"""Errors of the mapping stage.

::

    ValueError
     ├── ConfigError          ghlsync.yaml is invalid (names file, key, value, allowed)
     └── MappingError         one event cannot be mapped: dead-letter it with `str(error)`
          └── UnknownEventError   the event name has no rule (the receiver answers 404)

Every one of them is Fatal for the engine: retrying the same input gives the same answer.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

_MAX_SHOWN = 80


def show(value: object) -> str:
    """A value as a person reads it in an error, cut short so a dead letter stays readable."""
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


class ConfigError(ValueError):
    """The configuration is invalid; `problems` holds one line per problem."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.problems,))


class MappingError(ValueError):
    """A source field's value cannot become what GHL accepts."""

    def __init__(self, field: str, value: object, reason: str) -> None:
        self.field = field
        self.value = value
        self.reason = reason
        super().__init__(f"{field}: {show(value)} {reason}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (MappingError, (self.field, self.value, self.reason))


class UnknownEventError(MappingError):
    """No rule for this event name."""

    def __init__(self, event: str, known: Iterable[str]) -> None:
        self.event = event
        self.known = sorted(known)
        super().__init__(
            "event", event, "is not a configured event; known: " + ", ".join(self.known)
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (UnknownEventError, (self.event, self.known))
