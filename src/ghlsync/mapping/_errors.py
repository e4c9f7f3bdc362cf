"""Errors of the mapping stage.

::

    ValueError
     ├── ConfigError          ghlsync.yaml is invalid (names file, key, value, allowed)
     └── MappingError         one event cannot be mapped: dead-letter it with `str(error)`
          ├── MappingErrors       several fields of one event at once (`problems`), so the
          │                       sender fixes them all in one go
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

    @property
    def problems(self) -> list[MappingError]:
        """Each field's problem on its own; a single error is its own only problem."""
        return [self]

    @staticmethod
    def combine(problems: Sequence[MappingError]) -> MappingError:
        """One error for every problem found (the only one itself when there is one)."""
        flat = [one for error in problems for one in error.problems]
        return flat[0] if len(flat) == 1 else MappingErrors(flat)


class MappingErrors(MappingError):
    """Several fields of one event cannot be mapped; `str()` lists them all, `; `-separated."""

    def __init__(self, problems: Sequence[MappingError]) -> None:
        if not problems:
            raise ValueError("MappingErrors needs at least one problem")
        self._problems = list(problems)
        first = self._problems[0]
        ValueError.__init__(self, "; ".join(str(p) for p in self._problems))
        self.field, self.value, self.reason = first.field, first.value, first.reason

    def __reduce__(self) -> tuple[Any, ...]:
        return (MappingErrors, (self._problems,))

    @property
    def problems(self) -> list[MappingError]:
        """Every problem, in the order the rules were applied."""
        return list(self._problems)


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
