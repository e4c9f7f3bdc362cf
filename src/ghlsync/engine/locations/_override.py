"""A location's mapping override: YAML merged over the base config, validated like the file.

Only the mapping sections can be overridden (`events`, `fields`, `tags`, `custom_fields`,
`users`, `defaults`); where ghlsync writes, its tokens and its worker settings stay the base
config's. Merge rules, chosen so an override says only what differs:

- `events`, `custom_fields`, `users`, `defaults`: merged by key; a key given in the override
  replaces the base's entry for that key (an event rule is replaced whole);
- `fields`: per entity type, the override's rules go *before* the base's. The first rule
  with a value wins, so they take precedence while the base's still fill the other fields;
- `tags`: the override's list replaces the base's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ghlsync.mapping import AppConfig, ConfigError
from ghlsync.mapping._load import parse_yaml, validate

__all__ = ["OVERRIDABLE", "apply_override", "check_override"]

OVERRIDABLE = ("events", "fields", "tags", "custom_fields", "users", "defaults")
_BY_KEY = ("events", "custom_fields", "users", "defaults")


def apply_override(base: AppConfig, text: str | None, name: str = "mapping override") -> AppConfig:
    """`base` with the override in `text` merged over it; raises `ConfigError` naming `name`."""
    if not text or not text.strip():
        return base
    override = parse_yaml(text, name)
    unknown = sorted(set(override) - set(OVERRIDABLE))
    if unknown:
        allowed = ", ".join(OVERRIDABLE)
        raise ConfigError(
            [
                f"{name}: {key}: cannot be overridden per location; allowed: {allowed}"
                for key in unknown
            ]
        )
    merged = validate(_merge(_sections(base), override), name)
    return base.model_copy(update={section: getattr(merged, section) for section in OVERRIDABLE})


def check_override(base: AppConfig, text: str, name: str = "mapping override") -> None:
    """Raise `ConfigError` unless `text` is a valid override of `base`."""
    apply_override(base, text, name)


def _sections(base: AppConfig) -> dict[str, Any]:
    # The mapping sections hold no secrets, so a JSON dump round-trips them exactly.
    return base.model_dump(mode="json", by_alias=True, include=set(OVERRIDABLE))


def _merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for section, value in override.items():
        if section == "fields" and isinstance(value, Mapping):
            merged[section] = _fields_first(base.get(section) or {}, value)
        elif section in _BY_KEY and isinstance(value, Mapping):
            merged[section] = {**(base.get(section) or {}), **value}
        else:
            merged[section] = value  # a list (tags) or a wrong type, which validate reports
    return merged


def _fields_first(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for entity, rules in override.items():
        before = rules if isinstance(rules, list) else [rules]  # a wrong type: validate says
        merged[entity] = [*before, *(base.get(entity) or [])]
    return merged
