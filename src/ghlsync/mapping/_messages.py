"""Pydantic's validation errors, reworded: file, key path, bad value, what is allowed."""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Iterable
from typing import Any

import pydantic
from pydantic_core import ErrorDetails

from ghlsync.mapping._checks import Loc
from ghlsync.mapping._config import AppConfig
from ghlsync.mapping._errors import show


def describe_all(name: str, errors: Iterable[ErrorDetails]) -> list[str]:
    """One line per problem, without repeats (a union reports one mistake once per member)."""
    return list(dict.fromkeys(_describe(name, error) for error in errors))


def key_path(loc: Loc) -> str:
    """`("events", "task.created", "fields", 0, "to")` → `events.task.created.fields[0].to`."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


_UNION_TAG = re.compile(r"[\[\]-]|^(str|int|float|bool|list|dict|none)$")


def _describe(name: str, error: ErrorDetails) -> str:
    loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and _UNION_TAG.search(p)))
    kind, value = error["type"], error.get("input")
    if kind == "extra_forbidden":
        return f"{name}: {key_path(loc)}: unknown key; {_allowed_keys(loc)}"
    if kind == "missing":
        return f"{name}: {key_path(loc)}: is required"
    if kind == "literal_error":
        allowed = re.findall(r"'([^']*)'", str(error.get("ctx", {}).get("expected", "")))
        return f"{name}: {key_path(loc)}: {show(value)} is not one of {', '.join(allowed)}"
    if kind == "value_error":
        return f"{name}: {key_path(loc)}: " + error["msg"].removeprefix("Value error, ")
    message = error["msg"].replace("Input should be", "must be")
    return f"{name}: {key_path(loc)}: {show(value)} is invalid: {message}"


def _allowed_keys(loc: Loc) -> str:
    model = _model_at(loc[:-1])
    if model is None:
        return "this key is not allowed here"
    known = list(model.model_fields)
    aliases = [f.alias or n for n, f in model.model_fields.items()]
    close = difflib.get_close_matches(str(loc[-1]), aliases, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return "allowed: " + ", ".join(aliases if aliases else known) + hint


def _model_at(loc: Loc) -> type[pydantic.BaseModel] | None:
    current: Any = AppConfig
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, pydantic.BaseModel):
            field = _field_named(current, str(part))
            current = field.annotation if field is not None else None
        elif typing.get_origin(current) is list:
            current = typing.get_args(current)[0]
        elif typing.get_origin(current) is dict:
            current = typing.get_args(current)[1]
        else:
            return None
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, pydantic.BaseModel):
        return current
    return None


def _field_named(model: type[pydantic.BaseModel], key: str) -> Any:
    for field_name, field in model.model_fields.items():
        if key in (field_name, field.alias):
            return field
    return None


def _unwrap(annotation: Any) -> Any:
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            members = [a for a in typing.get_args(annotation) if a is not type(None)]
            annotation = members[0]
        else:
            return annotation
