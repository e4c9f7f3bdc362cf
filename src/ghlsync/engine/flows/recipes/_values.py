"""Conditions (`when:`/`if:`) and templates (`"Call {first_name}"`) over an event's fields.

Field names fold like the receiver folds payload keys (`First Name`, `firstName` and
`first_name` are one name), so a recipe can name a field either way. No expressions, no eval:
a condition is one of the tests of `Condition`, a template only substitutes `{name}`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ghlsync.dripjobs import fold_key
from ghlsync.engine.flows.recipes._model import Condition

_NAME = re.compile(r"\{\s*([A-Za-z_][A-Za-z0-9_. ]*?)\s*\}")


def folded(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The fields with their names folded (first spelling wins on a clash)."""
    out: dict[str, Any] = {}
    for key, value in fields.items():
        out.setdefault(fold_key(str(key)), value)
    return out


def _text(value: Any) -> str:
    return str(value).strip().lower()


def _same(value: Any, wanted: Any) -> bool:
    if isinstance(wanted, bool) or isinstance(value, bool):
        return _text(value) == _text(wanted)
    if isinstance(wanted, int | float):
        number = _number(value)
        return number is not None and number == float(wanted)
    return _text(value) == _text(wanted)


def _number(value: Any) -> float | None:
    try:
        return float(str(value).replace(",", "").replace("$", "").strip())
    except ValueError:
        return None


def _present(value: Any) -> bool:
    return value is not None and value != "" and value != []


def failed_test(condition: Condition, value: Any) -> str | None:
    """The first test of `condition` that `value` fails (e.g. `"in"`), None if all hold."""
    tests = condition.model_fields_set
    present = _present(value)
    if "exists" in tests and present != condition.exists:
        return "exists"
    checks: list[tuple[str, bool]] = [
        ("equals", present and _same(value, condition.equals)),
        ("not_", not (present and _same(value, condition.not_))),
        ("in_", present and any(_same(value, v) for v in condition.in_ or [])),
        ("not_in", not (present and any(_same(value, v) for v in condition.not_in or []))),
        ("contains", present and _text(condition.contains) in _text(value)),
        ("starts_with", present and _text(value).startswith(_text(condition.starts_with))),
    ]
    for name, ok in checks:
        if name in tests and not ok:
            return name.rstrip("_")
    return _failed_comparison(condition, tests, _number(value) if present else None)


def _failed_comparison(condition: Condition, tests: set[str], number: float | None) -> str | None:
    for name in ("gt", "gte", "lt", "lte"):
        bound = getattr(condition, name)
        if name in tests and (number is None or not _holds(name, number, float(bound))):
            return name
    return None


def _holds(test: str, number: float, bound: float) -> bool:
    if test == "gt":
        return number > bound
    if test == "gte":
        return number >= bound
    return number < bound if test == "lt" else number <= bound


def unmet(conditions: Mapping[str, Condition], fields: Mapping[str, Any]) -> str | None:
    """Why the conditions do not hold (`"lead_source: not in"`), None when they all do."""
    values = folded(fields)
    for name, condition in conditions.items():
        test = failed_test(condition, values.get(fold_key(name)))
        if test is not None:
            return f"{name}: {show_value(values.get(fold_key(name)))} fails `{test}`"
    return None


def show_value(value: Any) -> str:
    """A field value as a person reads it in a preview."""
    return "(missing)" if value is None else repr(value)


def template_names(value: Any) -> set[str]:
    """The `{name}`s a template (string, list or mapping of them) uses."""
    if isinstance(value, str):
        return {m.group(1) for m in _NAME.finditer(value)}
    if isinstance(value, list):
        return set().union(*(template_names(v) for v in value)) if value else set()
    if isinstance(value, dict):
        return template_names(list(value.values()))
    return set()


def render(value: Any, fields: Mapping[str, Any]) -> Any:
    """`value` with every `{name}` replaced by the field's text ("" when it is missing)."""
    if isinstance(value, str):
        return _NAME.sub(lambda m: _field_text(fields, m.group(1)), value)
    if isinstance(value, list):
        return [render(v, fields) for v in value]
    if isinstance(value, dict):
        return {k: render(v, fields) for k, v in value.items()}
    return value


def _field_text(fields: Mapping[str, Any], name: str) -> str:
    found = fields.get(name, fields.get(fold_key(name)))
    return "" if found is None else str(found)
