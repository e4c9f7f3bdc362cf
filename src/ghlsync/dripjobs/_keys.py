"""Key folding: Zap field names are user-chosen, so "First Name", `firstName`, `first-name`
and `FIRST_NAME` must all mean `first_name`."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any

_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_SEPARATORS = re.compile(r"[^0-9a-zA-Z]+")


@functools.lru_cache(maxsize=4096)  # a Zap sends the same few names on every delivery
def fold_key(key: str) -> str:
    """Fold one field name to snake_case."""
    spaced = _CAMEL_BOUNDARY.sub("_", key.strip())
    return _SEPARATORS.sub("_", spaced).strip("_").lower()


def fold_keys(payload: Mapping[str, Any]) -> dict[str, Any]:
    """Fold every top-level key; on a clash the first non-empty value wins."""
    folded: dict[str, Any] = {}
    for key, value in payload.items():
        name = fold_key(str(key))
        if name not in folded or folded[name] in (None, ""):
            folded[name] = value
    return folded
