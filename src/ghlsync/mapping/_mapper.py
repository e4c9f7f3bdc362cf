"""The mapper: one DripJobs event (folded payload) → the GHL entities it should produce.

Every field is mapped even after one fails, so a `MappingError` names all the bad fields of
an event at once (`MappingError.problems`); only a missing or unusable id stops at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from ghlsync._clock import SYSTEM_CLOCK, Clock
from ghlsync.dripjobs._keys import fold_key, fold_keys
from ghlsync.mapping import _compiled, _dates
from ghlsync.mapping._compiled import EventPlan, plan_event
from ghlsync.mapping._config import AppConfig, EntityType, EventRule, FieldRule
from ghlsync.mapping._errors import MappingError, UnknownEventError
from ghlsync.mapping._model import EntityKey, MappedEntity, MappedEvent
from ghlsync.mapping._opportunities import card_fields, opportunity_entity
from ghlsync.mapping._transforms import Context, is_blank

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
        self._plans: dict[str, EventPlan] = {}

    @property
    def events(self) -> list[str]:
        """The configured event names."""
        return sorted(self.config.events)

    def knows(self, event: str) -> bool:
        """Whether `event` has a rule (the receiver answers 404 otherwise)."""
        return event in self.config.events

    def entity_key(self, event: str, payload: Mapping[str, Any]) -> EntityKey:
        """The entity the event is about (the work-row key)."""
        plan = self._plan(event)
        return self._key(plan, fold_keys(payload))

    def source_updated_at(self, event: str, payload: Mapping[str, Any]) -> datetime | None:
        """The event's source timestamp (its rule's `timestamp` field), for ordering updates."""
        return self._timestamp(self._plan(event), fold_keys(payload))

    def identify(
        self, event: str, payload: Mapping[str, Any], *, folded: bool = False
    ) -> tuple[EntityKey, datetime | None]:
        """`entity_key` and `source_updated_at` at once, the payload folded once (what the
        receiver asks of every delivery); the same errors, in the same order. `folded`: the
        payload's keys are folded already (`fold_keys`, as the receiver's are), not again."""
        plan = self._plan(event)
        data = payload if folded else fold_keys(payload)
        return self._key(plan, data), self._timestamp(plan, data)

    def map(self, event: str, payload: Mapping[str, Any]) -> MappedEvent:
        """Every entity the event touches, parent contact first.

        Raises `MappingError` naming every field that cannot be mapped (see `.problems`).
        """
        plan = self._plan(event)
        data = fold_keys(payload)
        key = self._key(plan, data)
        problems: Problems = []
        try:
            updated = self._timestamp(plan, data)
        except MappingError as error:
            problems.append(error)
            updated = None
        entities = self._entities(key, plan, data, updated, problems)
        card = None
        if plan.card:  # only deal and project events, with their pipeline set, make one
            card = self._collect(problems, self._opportunity, event, plan, data, key, updated)
        if problems:
            raise MappingError.combine(problems)
        return MappedEvent(event, entities, card)

    def _plan(self, event: str) -> EventPlan:
        """The compiled rule of `event`, compiled again if the rule or config is another."""
        rule = self._rule(event)
        plan = self._plans.get(event)
        if plan is None or plan.rule is not rule or plan.config is not self.config:
            plan = self._plans[event] = plan_event(self.config, event, rule, self._ctx)
        return plan

    @staticmethod
    def _key(plan: EventPlan, data: Mapping[str, Any]) -> EntityKey:
        rule = plan.rule
        return EntityKey(rule.entity, _source_id(data, plan.id_key, rule.id, rule.entity))

    def _opportunity(
        self,
        event: str,
        plan: EventPlan,
        data: Mapping[str, Any],
        key: EntityKey,
        updated: datetime | None,
    ) -> MappedEntity | None:
        """The customer's card for a deal or project event (`opportunities:`), if configured."""
        rule = plan.rule
        customer = key if rule.entity == "contact" else self._parent(plan, data)
        if customer is None or rule.action == "delete":
            return None
        settings = self.config.opportunities
        return opportunity_entity(settings, event, data, customer, updated, self._ctx)

    def unmapped(self, event: str, payload: Mapping[str, Any]) -> list[str]:
        """The payload's fields (folded) that no rule of `event` reads, in payload order."""
        used = self._used_fields(self._plan(event), fold_keys(payload))
        used |= {fold_key(n) for n in card_fields(self.config.opportunities, event)}
        return [name for name in fold_keys(payload) if name not in used]

    def _entities(
        self,
        key: EntityKey,
        plan: EventPlan,
        data: Mapping[str, Any],
        updated: datetime | None,
        problems: Problems,
    ) -> list[MappedEntity]:
        rule = plan.rule
        if rule.entity == "contact":
            return [self._contact(key, plan, data, updated, problems, primary=True)]
        entities: list[MappedEntity] = []
        parent = self._parent(plan, data)
        if parent is not None and rule.action != "delete":
            contact = self._contact(parent, plan, data, updated, problems, primary=False)
            if contact.body or contact.tags_add or contact.custom_fields:
                entities.append(contact)
        entities.append(self._child(key, plan, data, parent, updated, problems))
        return entities

    @staticmethod
    def _collect(problems: Problems, step: Any, *args: Any) -> Any:
        """`step(*args)`, or None with its `MappingError` added to `problems`."""
        try:
            return step(*args)
        except MappingError as error:
            problems.append(error)
            return None

    def _used_fields(self, plan: EventPlan, data: Mapping[str, Any]) -> set[str]:
        """Every (folded) source field the rules of one event may read."""
        rule = plan.rule
        names = [rule.id, *RECEIVER_FIELDS]
        names += [n for n in (rule.contact, rule.timestamp) if n is not None]
        if rule.action != "delete":
            rules = [*rule.fields, *self.config.fields.for_type(rule.entity)]
            if rule.entity == "contact" or self._parent(plan, data) is not None:
                rules += self.config.fields.contact
                names += [t.source for t in (*self.config.tags, *rule.tags) if t.source]
                names += list(self.config.custom_fields)
            names += [source for field_rule in rules for source in field_rule.sources]
        return {fold_key(name) for name in names}

    def _rule(self, event: str) -> EventRule:
        rule = self.config.events.get(event)
        if rule is None:
            raise UnknownEventError(event, self.config.events)
        return rule

    def _parent(self, plan: EventPlan, data: Mapping[str, Any]) -> EntityKey | None:
        rule = plan.rule
        if rule.contact is None or plan.contact_key is None:
            return None
        if rule.action == "delete" and is_blank(data.get(plan.contact_key)):
            return None  # the engine finds the contact of a known task through the id map
        return EntityKey("contact", _source_id(data, plan.contact_key, rule.contact, "contact"))

    def _timestamp(self, plan: EventPlan, data: Mapping[str, Any]) -> datetime | None:
        field = plan.rule.timestamp
        if field is None or plan.timestamp_key is None:
            return None
        value = data.get(plan.timestamp_key)
        if is_blank(value):
            return None
        try:
            # A date near either end of the calendar parses, but has no UTC equivalent.
            return _dates.instant(value, self._ctx.input_zone)
        except (_dates.DateFormatError, ValueError, OverflowError, OSError):
            raise MappingError(field, value, "is not a date-time") from None

    def _contact(
        self,
        key: EntityKey,
        plan: EventPlan,
        data: Mapping[str, Any],
        updated: datetime | None,
        problems: Problems,
        *,
        primary: bool,
    ) -> MappedEntity:
        rule = plan.rule
        if primary and rule.action == "delete":
            return MappedEntity("contact", key.source_id, "delete", source_updated_at=updated)
        # A contact event's own rules come first (`plan.fields`); a child's parent has none.
        rules = plan.fields if primary else plan.contact_fields
        body, defaults = _compiled.fill(rules, data, self._ctx, problems)
        if primary:
            body.update(rule.set)
        added, prefixes = _compiled.tags(plan.tags, data, self._ctx)
        return MappedEntity(
            type="contact",
            source_id=key.source_id,
            action="upsert",
            body=body,
            defaults=defaults,
            tags_add=added,
            tags_remove_prefixes=prefixes,
            custom_fields=_compiled.custom_fields(plan, data, self._ctx, problems),
            # A child's event carries its customer's fields as they were at the child's time:
            # the flows order them field by field against the customer's own events.
            source_updated_at=updated,
        )

    def _child(
        self,
        key: EntityKey,
        plan: EventPlan,
        data: Mapping[str, Any],
        parent: EntityKey | None,
        updated: datetime | None,
        problems: Problems,
    ) -> MappedEntity:
        rule = plan.rule
        if rule.action == "delete":
            return MappedEntity(
                key.type, key.source_id, "delete", parent=parent, source_updated_at=updated
            )
        body, defaults = _compiled.fill(plan.fields, data, self._ctx, problems)
        body.update(rule.set)
        body.update(_FORCED.get(rule.action, {}))
        self._collect(problems, self._fill_defaults, key.type, body, defaults, plan.rules)
        defaults = {k: v for k, v in defaults.items() if k not in body}
        return MappedEntity(
            type=key.type,
            source_id=key.source_id,
            action=rule.action,
            body=body,
            defaults=defaults,
            parent=parent,
            source_updated_at=updated,
            sources=dict(plan.sources),
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


def _source_id(data: Mapping[str, Any], key: str, field: str, entity: str) -> str:
    """The id in `field` (folded: `key`), checked."""
    value = data.get(key)
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


def _source_of(target: str, rules: Sequence[FieldRule]) -> str:
    for rule in rules:
        if target in rule.targets:
            return rule.sources[0]
    return target
