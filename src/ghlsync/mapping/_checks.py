"""Checks that need several keys at once: an action the entity allows, a GHL field the entity
accepts, transforms used with the right number of fields, well-formed tag rules."""

from __future__ import annotations

from collections.abc import Iterator

from ghlsync.mapping._config import AppConfig, EntityType, EventRule, FieldRule, TagRule
from ghlsync.mapping._shapes import ACTIONS_BY_TYPE, BODY_FIELDS
from ghlsync.mapping._transforms import MULTI_FIELD
from ghlsync.mapping._writeback import check_writeback

Loc = tuple[str | int, ...]
Problem = tuple[Loc, object, str]


def check(config: AppConfig) -> list[Problem]:
    """Every cross-key problem as (key path, bad value, what is allowed)."""
    problems: list[Problem] = []
    for entity in ("contact", "task", "note", "appointment"):
        for index, rule in enumerate(config.fields.for_type(entity)):
            problems += _field_rule(("fields", entity, index), rule, entity)
    for name, event in config.events.items():
        problems += _event(("events", name), event)
    for index, tag_rule in enumerate(config.tags):
        problems += _tag_rule(("tags", index), tag_rule)
    for source, custom in config.custom_fields.items():
        if any(t in MULTI_FIELD for t in custom.transforms):
            problems.append(
                (("custom_fields", source, "transform"), custom.transforms, _single_only())
            )
    problems += check_writeback(config.writeback)
    return problems


def _single_only() -> str:
    return "a single-field transform (not " + ", ".join(sorted(MULTI_FIELD)) + ")"


def _event(loc: Loc, event: EventRule) -> Iterator[Problem]:
    allowed = ACTIONS_BY_TYPE[event.entity]
    if event.action not in allowed:
        yield (
            (*loc, "action"),
            event.action,
            f"is not allowed for a {event.entity}; one of " + ", ".join(sorted(allowed)),
        )
    if event.entity == "contact" and event.contact is not None:
        yield (*loc, "contact"), event.contact, "only applies to task, note and appointment events"
    if event.entity != "contact" and event.contact is None and event.action != "delete":
        yield (
            (*loc, "contact"),
            None,
            f"is required: the field holding the id of the contact the {event.entity} belongs to",
        )
    for index, rule in enumerate(event.fields):
        yield from _field_rule((*loc, "fields", index), rule, event.entity)
    for target in event.set:
        if target not in BODY_FIELDS[event.entity]:
            yield (*loc, "set", target), target, _known_fields(event.entity)
    for index, tag_rule in enumerate(event.tags):
        yield from _tag_rule((*loc, "tags", index), tag_rule)


def _known_fields(entity: EntityType) -> str:
    return f"is not a GHL {entity} field; one of " + ", ".join(sorted(BODY_FIELDS[entity]))


def _field_rule(loc: Loc, rule: FieldRule, entity: EntityType) -> Iterator[Problem]:
    for target in rule.targets:
        if target not in BODY_FIELDS[entity]:
            yield (*loc, "to"), target, _known_fields(entity)
    transforms = rule.transforms
    multi = [t for t in transforms if t in MULTI_FIELD]
    if multi and len(transforms) > 1:
        yield (*loc, "transform"), transforms, f"{multi[0]} must be the only transform"
    kind = multi[0] if multi else "single"
    expected = {
        "name_split": (1, 2, "one 'from' field and two 'to' fields (first, last)"),
        "name_join": (None, 1, "one or more 'from' fields and one 'to' field"),
        "join": (None, 1, "one or more 'from' fields and one 'to' field"),
        "single": (1, 1, "one 'from' field and one 'to' field"),
    }[kind]
    sources, targets, wording = expected
    if (sources is not None and len(rule.sources) != sources) or len(rule.targets) != targets:
        yield loc, {"from": rule.sources, "to": rule.targets}, f"needs {wording}"


def _tag_rule(loc: Loc, rule: TagRule) -> Iterator[Problem]:
    if rule.source is not None and "{value}" not in rule.tag:
        yield (*loc, "tag"), rule.tag, "must contain {value} when 'from' is set"
    if rule.source is None and "{value}" in rule.tag:
        yield (*loc, "tag"), rule.tag, "uses {value}, so it needs a 'from' field"
    if rule.replace_prefix is not None and not rule.tag.lower().startswith(
        rule.replace_prefix.lower()
    ):
        yield (
            (*loc, "replace_prefix"),
            rule.replace_prefix,
            f"must be the start of the tag {rule.tag!r}",
        )
