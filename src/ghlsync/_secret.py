"""A string that never shows itself in reprs, logs or error messages."""

from __future__ import annotations

from typing import Any


class Secret:
    """Wraps a credential; `str()` and `repr()` are masked, `.reveal()` gives the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({mask(self._value)!r})"

    def __str__(self) -> str:
        return mask(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self) -> Any:
        raise TypeError("Secret values are not picklable")


def mask(value: str) -> str:
    """Show at most the last four characters of a long credential, nothing of a short one."""
    if len(value) < 12:
        return "***"
    return "***" + value[-4:]
