"""An event rule compiled for the mapper: source names folded, each field rule's kind decided,
fixed tags formatted, once per `Mapper` and event instead of on every event.

`fill` applies compiled field rules exactly as the rules read: the first rule with a value
wins each GHL field, and every value that cannot be mapped adds its `MappingError`, in rule
order, to the caller's list.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ghlsync.dripjobs._keys import fold_key
from ghlsync.mapping._config import AppConfig, EventRule, FieldRule, Scalar, TagRule
from ghlsync.mapping._errors import MappingError
from ghlsync.mapping._opportunities import card_fields
from ghlsync.mapping._transforms import (
    Context,
    TransformFailed,
    apply_chain,
    is_blank,
    join,
    name_split,
    strip,
    tag,
)

# strip: the default transform alone; chain: other single-value transforms; as_written: a
# rule without transforms (`transform: []`), read as every other rule used to be (it fails).
Kind = Literal["strip", "chain", "name_split", "name_join", "join", "as_written"]
Problems = list[MappingError]


@dataclass(frozen=True, slots=True)
class FieldPlan:
    """One field rule: its folded source names and how its value is made."""

    rule: FieldRule
    kind: Kind
    keys: tuple[str, ...]
    defaults: tuple[tuple[str, Scalar], ...]  # (GHL field, create-only default)


@dataclass(frozen=True, slots=True)
class TagPlan:
    """One tag rule: the folded source (None: a fixed tag, `name` formatted already)."""

    rule: TagRule
    key: str | None
    name: str
    prefix: str | None


@dataclass(frozen=True, slots=True)
class EventPlan:
    """Everything the mapper reads from the config for one event, ready to apply."""

    config: AppConfig  # what it was compiled from: the mapper compiles again when that changes
    rule: EventRule
    id_key: str
    contact_key: str | None
    timestamp_key: str | None
    rules: tuple[FieldRule, ...]  # the event's own field rules, then its entity type's
    fields: tuple[FieldPlan, ...]  # the same, compiled
    contact_fields: tuple[FieldPlan, ...]  # the contact rules (a child's parent contact)
    tags: tuple[TagPlan, ...]
    # (source field, folded, GHL custom field key, transforms) per `custom_fields:` entry
    custom_fields: tuple[tuple[str, str, str, tuple[str, ...]], ...]
    sources: dict[str, str]  # per GHL field, its rules' sources (`MappedEntity.sources`)
    card: bool  # whether the event can put a card in a pipeline


def plan_event(config: AppConfig, event: str, rule: EventRule, ctx: Context) -> EventPlan:
    """Compile `rule` (the rule of `event` in `config`)."""
    rules = (*rule.fields, *config.fields.for_type(rule.entity))
    return EventPlan(
        config=config,
        rule=rule,
        id_key=fold_key(rule.id),
        contact_key=None if rule.contact is None else fold_key(rule.contact),
        timestamp_key=None if rule.timestamp is None else fold_key(rule.timestamp),
        rules=rules,
        fields=tuple(map(plan_field, rules)),
        contact_fields=tuple(map(plan_field, config.fields.contact)),
        tags=tuple(_plan_tag(t, ctx) for t in (*config.tags, *rule.tags)),
        custom_fields=tuple(
            (source, fold_key(source), custom.key, tuple(custom.transforms))
            for source, custom in config.custom_fields.items()
        ),
        sources=sources(rules),
        card=bool(card_fields(config.opportunities, event)),
    )


def plan_field(rule: FieldRule) -> FieldPlan:
    """Compile one field rule."""
    kind: Kind = "as_written"
    if rule.transforms == ["strip"]:
        kind = "strip"
    elif rule.transforms and rule.transforms[0] in ("name_split", "name_join", "join"):
        kind = rule.transforms[0]
    elif rule.transforms:
        kind = "chain"
    defaults = () if rule.default is None else tuple((t, rule.default) for t in rule.targets)
    return FieldPlan(rule, kind, tuple(fold_key(s) for s in rule.sources), defaults)


def _plan_tag(rule: TagRule, ctx: Context) -> TagPlan:
    key = None if rule.source is None else fold_key(rule.source)
    name = rule.tag if key is not None else str(tag(rule.tag, ctx))  # a fixed tag: format it once
    prefix = None if rule.replace_prefix is None else rule.replace_prefix.lower()
    return TagPlan(rule, key, name, prefix)


def fill(
    plans: Sequence[FieldPlan], data: Mapping[str, Any], ctx: Context, problems: Problems
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Body and create-only defaults; for each GHL field the first rule with a value wins.

    A rule whose value cannot be mapped adds its error to `problems` and fills nothing.
    """
    body: dict[str, Any] = {}
    defaults: dict[str, Any] = {}
    for plan in plans:
        kind = plan.kind
        value = data.get(plan.keys[0])
        if kind == "strip" and type(value) is str:  # most values: apply_chain's answer, sooner
            if text := value.strip():
                body.setdefault(plan.rule.targets[0], text)
        elif kind == "strip" or kind == "chain":
            if value is not None:  # apply_chain leaves None out before any transform
                _single(plan, value, ctx, body, problems)
        elif value is not None or _reads_more(plan, data):
            _multi(plan, data, ctx, body, problems)
        for target, default in plan.defaults:
            defaults.setdefault(target, default)
    if defaults:
        for target in body:
            defaults.pop(target, None)
    return body, defaults


def _reads_more(plan: FieldPlan, data: Mapping[str, Any]) -> bool:
    """Whether a rule whose first source is absent can still fill something."""
    if plan.kind == "name_split":
        return False  # it splits the first source only
    if plan.kind == "as_written":
        return True
    return any(data.get(key) is not None for key in plan.keys[1:])  # a join of the rest


def _single(
    plan: FieldPlan, value: object, ctx: Context, body: dict[str, Any], problems: Problems
) -> None:
    rule = plan.rule
    try:
        result = apply_chain(rule.transforms, value, ctx)
    except TransformFailed as error:
        problems.append(MappingError(rule.sources[0], value, error.reason))
        return
    if result is not None:
        body.setdefault(rule.targets[0], result)


def _multi(
    plan: FieldPlan,
    data: Mapping[str, Any],
    ctx: Context,
    body: dict[str, Any],
    problems: Problems,
) -> None:
    try:
        mapped = _apply(plan, [data.get(key) for key in plan.keys], ctx)
    except MappingError as error:
        problems.append(error)
        return
    for target, value in mapped.items():
        body.setdefault(target, value)


def _apply(plan: FieldPlan, values: list[Any], ctx: Context) -> dict[str, Any]:
    """The rule's GHL fields from its source values, as the rule reads."""
    rule = plan.rule
    kind = rule.transforms[0] if rule.transforms else "as_written"  # `transform: []`
    if kind == "name_split":
        if is_blank(values[0]):
            return {}
        parts = name_split(strip(values[0], ctx))
        return {t: v for t, v in zip(rule.targets, parts, strict=True) if v}
    if kind in ("name_join", "join"):
        joined = join(values, " " if kind == "name_join" else ", ")
        return {rule.targets[0]: joined} if joined else {}
    try:
        result = apply_chain(rule.transforms, values[0], ctx)
    except TransformFailed as error:
        raise MappingError(rule.sources[0], values[0], error.reason) from None
    return {} if result is None else {rule.targets[0]: result}


def tags(
    plans: Sequence[TagPlan], data: Mapping[str, Any], ctx: Context
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The contact's tags to add, and the prefixes of the tags they replace."""
    added: list[str] = []
    prefixes: list[str] = []
    for plan in plans:
        name = plan.name
        if plan.key is not None:
            value = data.get(plan.key)
            if is_blank(value):
                continue  # an absent stage says nothing: keep the tags GHL has
            name = str(tag(name.replace("{value}", str(strip(value, ctx))), ctx))
        if name not in added:
            added.append(name)
        if plan.prefix is not None and plan.prefix not in prefixes:
            prefixes.append(plan.prefix)
    return tuple(added), tuple(prefixes)


def custom_fields(
    plan: EventPlan, data: Mapping[str, Any], ctx: Context, problems: Problems
) -> dict[str, Any]:
    """The contact's custom fields, by GHL key."""
    result: dict[str, Any] = {}
    for source, key, ghl_key, transforms in plan.custom_fields:
        value = data.get(key)
        try:
            converted = apply_chain(transforms, value, ctx)
        except TransformFailed as error:
            problems.append(MappingError(source, value, error.reason))
            continue
        if converted is not None:
            result[ghl_key] = converted
    return result


def sources(rules: Sequence[FieldRule]) -> dict[str, str]:
    """Per GHL field, the source field(s) of the rules that fill it, in rule order."""
    names: dict[str, list[str]] = {}
    for rule in rules:
        for target in rule.targets:
            names.setdefault(target, []).append("/".join(rule.sources))
    return {target: " or ".join(found) for target, found in names.items()}
