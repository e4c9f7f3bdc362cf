"""The mapper: one DripJobs event (folded payload) → the GHL entities it should produce.

Every field is mapped even after one fails, so a `MappingError` names all the bad fields of
an event at once (`MappingError.problems`); only a missing or unusable id stops at once.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from ghlsync._clock import SYSTEM_CLOCK, Clock
from ghlsync.dripjobs._keys import fold_key, fold_keys
from ghlsync.mapping import _dates
from ghlsync.mapping._config import AppConfig, EntityType, EventRule, FieldRule, TagRule
from ghlsync.mapping._errors import MappingError, UnknownEventError
from ghlsync.mapping._model import EntityKey, MappedEntity, MappedEvent
from ghlsync.mapping._opportunities import card_fields, opportunity_entity
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

# Config field names are few and fixed: fold each once, not on every event.
_fold = functools.lru_cache(maxsize=4096)(fold_key)

MAX_ID_CHARS = 128  # the store's source id columns
RECEIVER_FIELDS = frozenset({"delivery_id"})  # read by the receiver, not by a rule

Problems = list[MappingError]

_FORCED: dict[str, dict[str, Any]] = {
    "complete": {"completed": True},
    "cancel": {"appointmentStatus": "cancelled"},
}


class Mapper:
    """Applies the declarative rules of an `AppConfig`; pure apart from the clock it reads
    for default task due dates."""

    def __init__(self, config: AppConfig, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.config = config
        self._clock = clock
        self._ctx = Context(
            phone_region=config.defaults.phone_region,
            input_zone=ZoneInfo(config.defaults.timezone),
            output_zone=ZoneInfo(config.output_timezone),
            default_hour=config.defaults.task_due_hour,
            users=config.users,
        )

    @property
    def events(self) -> list[str]:
        """The configured event names."""
        return sorted(self.config.events)

    def knows(self, event: str) -> bool:
        """Whether `event` has a rule (the receiver answers 404 otherwise)."""
        return event in self.config.events

    def entity_key(self, event: str, payload: Mapping[str, Any]) -> EntityKey:
        """The entity the event is about (the work-row key)."""
        rule = self._rule(event)
        return EntityKey(rule.entity, _source_id(fold_keys(payload), rule.id, rule.entity))

    def source_updated_at(self, event: str, payload: Mapping[str, Any]) -> datetime | None:
        """The event's source timestamp (its rule's `timestamp` field), for ordering updates."""
        return self._timestamp(self._rule(event), fold_keys(payload))

    def map(self, event: str, payload: Mapping[str, Any]) -> MappedEvent:
        """Every entity the event touches, parent contact first.

        Raises `MappingError` naming every field that cannot be mapped (see `.problems`).
        """
        rule = self._rule(event)
        data = fold_keys(payload)
        key = EntityKey(rule.entity, _source_id(data, rule.id, rule.entity))
        problems: Problems = []
        updated = self._collect(problems, self._timestamp, rule, data)
        entities = self._entities(key, rule, data, updated, problems)
        card = self._collect(problems, self._opportunity, event, rule, data, key, updated)
        if problems:
            raise MappingError.combine(problems)
        return MappedEvent(event, entities, card)

    def _opportunity(
        self,
        event: str,
        rule: EventRule,
        data: Mapping[str, Any],
        key: EntityKey,
        updated: datetime | None,
    ) -> MappedEntity | None:
        """The customer's card for a deal or project event (`opportunities:`), if configured."""
        customer = key if rule.entity == "contact" else self._parent(rule, data)
        if customer is None or rule.action == "delete":
            return None
        settings = self.config.opportunities
        return opportunity_entity(settings, event, data, customer, updated, self._ctx)

    def unmapped(self, event: str, payload: Mapping[str, Any]) -> list[str]:
        """The payload's fields (folded) that no rule of `event` reads, in payload order."""
        rule = self._rule(event)
        used = self._used_fields(rule, fold_keys(payload))
        used |= {_fold(n) for n in card_fields(self.config.opportunities, event)}
        return [name for name in fold_keys(payload) if name not in used]

    def _entities(
        self,
        key: EntityKey,
        rule: EventRule,
        data: Mapping[str, Any],
        updated: datetime | None,
        problems: Problems,
    ) -> list[MappedEntity]:
        if rule.entity == "contact":
            return [self._contact(key, rule, data, updated, problems, primary=True)]
        entities: list[MappedEntity] = []
        parent = self._parent(rule, data)
        if parent is not None and rule.action != "delete":
            contact = self._contact(parent, rule, data, updated, problems, primary=False)
            if contact.body or contact.tags_add or contact.custom_fields:
                entities.append(contact)
        entities.append(self._child(key, rule, data, parent, updated, problems))
        return entities

    @staticmethod
    def _collect(problems: Problems, step: Any, *args: Any) -> Any:
        """`step(*args)`, or None with its `MappingError` added to `problems`."""
        try:
            return step(*args)
        except MappingError as error:
            problems.append(error)
            return None

    def _used_fields(self, rule: EventRule, data: Mapping[str, Any]) -> set[str]:
        """Every (folded) source field the rules of one event may read."""
        names = [rule.id, *RECEIVER_FIELDS]
        names += [n for n in (rule.contact, rule.timestamp) if n is not None]
        if rule.action != "delete":
            rules = [*rule.fields, *self.config.fields.for_type(rule.entity)]
            if rule.entity == "contact" or self._parent(rule, data) is not None:
                rules += self.config.fields.contact
                names += [t.source for t in (*self.config.tags, *rule.tags) if t.source]
                names += list(self.config.custom_fields)
            names += [source for field_rule in rules for source in field_rule.sources]
        return {_fold(name) for name in names}

    def _rule(self, event: str) -> EventRule:
        rule = self.config.events.get(event)
        if rule is None:
            raise UnknownEventError(event, self.config.events)
        return rule

    def _parent(self, rule: EventRule, data: Mapping[str, Any]) -> EntityKey | None:
        if rule.contact is None:
            return None
        if rule.action == "delete" and is_blank(data.get(_fold(rule.contact))):
            return None  # the engine finds the contact of a known task through the id map
        return EntityKey("contact", _source_id(data, rule.contact, "contact"))

    def _timestamp(self, rule: EventRule, data: Mapping[str, Any]) -> datetime | None:
        if rule.timestamp is None:
            return None
        value = data.get(_fold(rule.timestamp))
        if is_blank(value):
            return None
        try:
            moment = _dates.parse(value, self._ctx.input_zone)
            # A date near either end of the calendar parses, but has no UTC equivalent.
            return _dates.to_datetime(moment, self._ctx.input_zone, 0).astimezone(UTC)
        except (_dates.DateFormatError, ValueError, OverflowError, OSError):
            raise MappingError(rule.timestamp, value, "is not a date-time") from None

    def _contact(
        self,
        key: EntityKey,
        rule: EventRule,
        data: Mapping[str, Any],
        updated: datetime | None,
        problems: Problems,
        *,
        primary: bool,
    ) -> MappedEntity:
        if primary and rule.action == "delete":
            return MappedEntity("contact", key.source_id, "delete", source_updated_at=updated)
        extra = rule.fields if primary else []
        body, defaults = self._fields([*extra, *self.config.fields.contact], data, problems)
        if primary:
            body.update(rule.set)
        added, prefixes = self._tags([*self.config.tags, *rule.tags], data)
        return MappedEntity(
            type="contact",
            source_id=key.source_id,
            action="upsert",
            body=body,
            defaults=defaults,
            tags_add=added,
            tags_remove_prefixes=prefixes,
            custom_fields=self._custom_fields(data, problems),
            # A child's event carries its customer's fields as they were at the child's time:
            # the flows order them field by field against the customer's own events.
            source_updated_at=updated,
        )

    def _child(
        self,
        key: EntityKey,
        rule: EventRule,
        data: Mapping[str, Any],
        parent: EntityKey | None,
        updated: datetime | None,
        problems: Problems,
    ) -> MappedEntity:
        if rule.action == "delete":
            return MappedEntity(
                key.type, key.source_id, "delete", parent=parent, source_updated_at=updated
            )
        rules = [*rule.fields, *self.config.fields.for_type(key.type)]
        body, defaults = self._fields(rules, data, problems)
        body.update(rule.set)
        body.update(_FORCED.get(rule.action, {}))
        self._collect(problems, self._fill_defaults, key.type, body, defaults, rules)
        defaults = {k: v for k, v in defaults.items() if k not in body}
        return MappedEntity(
            type=key.type,
            source_id=key.source_id,
            action=rule.action,
            body=body,
            defaults=defaults,
            parent=parent,
            source_updated_at=updated,
            sources=_sources(rules),
        )

    def _fill_defaults(
        self,
        entity: EntityType,
        body: dict[str, Any],
        defaults: dict[str, Any],
        rules: Sequence[FieldRule],
    ) -> None:
        settings = self.config.defaults
        if entity == "task":
            defaults.setdefault("title", settings.task_title)
            defaults.setdefault("completed", False)
            due = _dates.due_default(
                self._clock.now(),
                self._ctx.input_zone,
                settings.task_due_days,
                settings.task_due_hour,
            )
            defaults.setdefault("dueDate", _dates.iso(due, self._ctx.output_zone))
        elif entity == "appointment":
            defaults.setdefault("title", settings.appointment_title)
            self._derive_end(body, rules)
        elif entity == "note" and "body" not in body and "body" not in defaults:
            raise MappingError(_source_of("body", rules), None, "is missing: a note needs a body")

    def _derive_end(self, body: dict[str, Any], rules: Sequence[FieldRule]) -> None:
        start = body.get("startTime")
        if "endTime" in body or not isinstance(start, str):
            return
        try:
            begins = datetime.fromisoformat(start)
        except ValueError:
            return  # a start time not written by the datetime transform: leave the end to GHL
        minutes = timedelta(minutes=self.config.defaults.appointment_minutes)
        try:
            ends = begins + minutes
            ends.astimezone(UTC)  # must exist in UTC too, like every time the mapper writes
            body["endTime"] = ends.isoformat(timespec="seconds")
        except OverflowError:  # 9999-12-31T23:30: no end time exists in the calendar
            raise MappingError(
                _source_of("startTime", rules), start, "leaves no room for the appointment's end"
            ) from None

    def _fields(
        self, rules: Sequence[FieldRule], data: Mapping[str, Any], problems: Problems
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Body and create-only defaults; for each GHL field the first rule with a value wins.

        A rule whose value cannot be mapped adds its error to `problems` and fills nothing.
        """
        body: dict[str, Any] = {}
        defaults: dict[str, Any] = {}
        for rule in rules:
            for target, value in (self._collect(problems, self._apply, rule, data) or {}).items():
                body.setdefault(target, value)
            if rule.default is not None:
                for target in rule.targets:
                    defaults.setdefault(target, rule.default)
        for target in body:
            defaults.pop(target, None)
        return body, defaults

    def _apply(self, rule: FieldRule, data: Mapping[str, Any]) -> dict[str, Any]:
        values = [data.get(_fold(name)) for name in rule.sources]
        kind = rule.transforms[0]
        if kind == "name_split":
            if is_blank(values[0]):
                return {}
            parts = name_split(strip(values[0], self._ctx))
            return {t: v for t, v in zip(rule.targets, parts, strict=True) if v}
        if kind in ("name_join", "join"):
            joined = join(values, " " if kind == "name_join" else ", ")
            return {rule.targets[0]: joined} if joined else {}
        try:
            result = apply_chain(rule.transforms, values[0], self._ctx)
        except TransformFailed as error:
            raise MappingError(rule.sources[0], values[0], error.reason) from None
        return {} if result is None else {rule.targets[0]: result}

    def _tags(
        self, rules: Sequence[TagRule], data: Mapping[str, Any]
    ) -> tuple[tuple[str, ...], tuple[str, ...]]:
        added: list[str] = []
        prefixes: list[str] = []
        for rule in rules:
            text = rule.tag
            if rule.source is not None:
                value = data.get(_fold(rule.source))
                if is_blank(value):
                    continue  # an absent stage says nothing: keep the tags GHL has
                text = text.replace("{value}", str(strip(value, self._ctx)))
            name = str(tag(text, self._ctx))
            if name not in added:
                added.append(name)
            prefix = rule.replace_prefix
            if prefix is not None and prefix.lower() not in prefixes:
                prefixes.append(prefix.lower())
        return tuple(added), tuple(prefixes)

    def _custom_fields(self, data: Mapping[str, Any], problems: Problems) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for source, custom in self.config.custom_fields.items():
            value = data.get(_fold(source))
            try:
                converted = apply_chain(custom.transforms, value, self._ctx)
            except TransformFailed as error:
                problems.append(MappingError(source, value, error.reason))
                continue
            if converted is not None:
                result[custom.key] = converted
        return result


def _source_id(data: Mapping[str, Any], field: str, entity: str) -> str:
    value = data.get(_fold(field))
    if isinstance(value, bool) or is_blank(value) or isinstance(value, dict | list):
        raise MappingError(field, value, f"is missing or not an id: the {entity} id is required")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    if len(text) > MAX_ID_CHARS:
        raise MappingError(
            field, value, f"is too long for an id ({len(text)} characters; at most {MAX_ID_CHARS})"
        )
    return text


def _sources(rules: Sequence[FieldRule]) -> dict[str, str]:
    """Per GHL field, the source field(s) of the rules that fill it, in rule order."""
    names: dict[str, list[str]] = {}
    for rule in rules:
        for target in rule.targets:
            names.setdefault(target, []).append("/".join(rule.sources))
    return {target: " or ".join(found) for target, found in names.items()}


def _source_of(target: str, rules: Sequence[FieldRule]) -> str:
    for rule in rules:
        if target in rule.targets:
            return rule.sources[0]
    return target
