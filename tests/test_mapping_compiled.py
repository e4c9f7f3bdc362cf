"""The mapper's compiled rules: each Mapper answers from its own config, never from another's,
and the compiled field rules give what the rules say, read one by one (a plain reference)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ghlsync._clock import FakeClock
from ghlsync.dripjobs import fold_key, fold_keys
from ghlsync.mapping import AppConfig, FieldRule, Mapper, MappingError
from ghlsync.mapping._transforms import (
    Context,
    TransformFailed,
    apply_chain,
    is_blank,
    join,
    name_split,
    strip,
)

PAYLOAD = {"customer_id": "C-1", "City": " Austin ", "lead_source": "Google", "zip": "78701"}


def with_contact_rules(rules: list[dict[str, Any]], **update: Any) -> AppConfig:
    base = AppConfig.default().model_dump(by_alias=True)
    base["fields"]["contact"] = rules
    return AppConfig.model_validate({**base, **update})


def test_two_mappers_with_different_configs_each_answer_from_their_own() -> None:
    first = Mapper(with_contact_rules([{"from": "city", "to": "city"}]))
    second = Mapper(
        with_contact_rules(
            [{"from": "zip", "to": "city"}, {"from": "city", "to": "state", "transform": "lower"}],
            tags=[{"from": "lead_source", "tag": "via:{value}"}],
        )
    )
    for _ in range(2):  # the second round reads what the first compiled
        one = first.map("customer.updated", PAYLOAD).primary
        two = second.map("customer.updated", PAYLOAD).primary
        assert one.body == {"city": "Austin"}
        assert one.tags_add == ("source:google",)
        assert two.body == {"city": "78701", "state": "austin"}
        assert two.tags_add == ("via:google",)


def test_a_mapper_given_another_config_compiles_again() -> None:
    config = with_contact_rules([{"from": "city", "to": "city"}])
    m = Mapper(config)
    assert m.map("customer.updated", PAYLOAD).primary.body == {"city": "Austin"}
    fields = config.fields.model_copy(
        update={"contact": [FieldRule(**{"from": "zip", "to": "postalCode"})]}
    )
    m.config = config.model_copy(update={"fields": fields})  # the same event rules, shared
    assert m.map("customer.updated", PAYLOAD).primary.body == {"postalCode": "78701"}


def test_an_empty_transform_list_maps_the_value_as_written() -> None:
    """`transform: []` validates, so it must map (it raised IndexError on every event)."""
    m = Mapper(with_contact_rules([{"from": "City", "to": "city", "transform": []}]))
    assert m.map("customer.updated", PAYLOAD).primary.body == {"city": " Austin "}
    blank = {**PAYLOAD, "City": "  "}
    assert "city" not in m.map("customer.updated", blank).primary.body  # blank: left out


def test_an_event_rule_replaced_in_the_config_is_compiled_again() -> None:
    config = with_contact_rules([])  # its own: the preset is shared
    m = Mapper(config)
    assert m.entity_key("customer.updated", PAYLOAD).source_id == "C-1"
    config.events["customer.updated"] = config.events["customer.updated"].model_copy(
        update={"id": "zip"}
    )
    assert m.entity_key("customer.updated", PAYLOAD).source_id == "78701"


NAMES = ["first_name", "First Name", "city", "zip", "nick", "full name", "dob"]
VALUES = [None, "", "  ", " Ann Lee ", "ann@x.co", "bad@", "(512) 555-0100", "12/01/2026",
          "done", 7, 2.0, 2.5, True, [], {"a": 1}]  # fmt: skip
TARGETS = ["firstName", "lastName", "city", "postalCode", "email"]
TRANSFORMS = [["strip"], ["lower", "tag"], ["email"], ["phone_e164"], ["date"], ["user"],
              ["status_completed"], ["name_split"], ["name_join"], ["join"]]  # fmt: skip


@st.composite
def field_rules(draw: st.DrawFn) -> dict[str, Any]:
    transforms = draw(st.sampled_from(TRANSFORMS))
    several = transforms[0] in ("name_join", "join")
    sources = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=3 if several else 1))
    count = 2 if transforms[0] == "name_split" else 1
    targets = draw(st.lists(st.sampled_from(TARGETS), min_size=count, max_size=count))
    default = draw(st.sampled_from([None, "x", 3]))
    return {"from": sources, "to": targets, "transform": transforms, "default": default}


def reference(rules: list[FieldRule], data: dict[str, Any]) -> Any:
    """Body and defaults (or each problem) as the rules read, one by one."""
    body: dict[str, Any] = {}
    defaults: dict[str, Any] = {}
    problems: list[tuple[str, str]] = []
    ctx = Context()
    for rule in rules:
        values = [data.get(fold_key(name)) for name in rule.sources]
        kind, filled = rule.transforms[0], {}
        if kind == "name_split" and not is_blank(values[0]):
            parts = name_split(strip(values[0], ctx))
            filled = {t: v for t, v in zip(rule.targets, parts, strict=True) if v}
        elif kind in ("name_join", "join"):
            joined = join(values, " " if kind == "name_join" else ", ")
            filled = {rule.targets[0]: joined} if joined else {}
        elif kind != "name_split":
            try:
                result = apply_chain(rule.transforms, values[0], ctx)
            except TransformFailed as error:
                problems.append((rule.sources[0], error.reason))
            else:
                filled = {} if result is None else {rule.targets[0]: result}
        for target, value in filled.items():
            body.setdefault(target, value)
        for target in rule.targets if rule.default is not None else []:
            defaults.setdefault(target, rule.default)
    if problems:
        return problems
    return body, {k: v for k, v in defaults.items() if k not in body}


@settings(max_examples=300, deadline=None)
@given(
    rules=st.lists(field_rules(), max_size=6),
    payload=st.dictionaries(st.sampled_from(NAMES), st.sampled_from(VALUES), max_size=5),
)
def test_compiled_field_rules_answer_as_the_rules_read(
    rules: list[dict[str, Any]], payload: dict[str, Any]
) -> None:
    config = with_contact_rules(rules, tags=[])
    data = fold_keys(payload)
    expected = reference(config.fields.contact, data)
    m = Mapper(config, clock=FakeClock())
    for _ in range(2):  # compiled on the first event, reused on the second
        try:
            contact = m.map("customer.updated", {**payload, "customer_id": "C-1"}).primary
        except MappingError as error:
            assert [(p.field, p.reason) for p in error.problems] == expected
        else:
            assert (contact.body, contact.defaults) == expected


def test_identify_answers_as_entity_key_and_source_updated_at_do_errors_included() -> None:
    """The receiver's one call per delivery: the key and the timestamp, or the error the two
    calls would raise first (an unknown event, then a bad id, then a bad timestamp)."""
    mapper = Mapper(AppConfig.default(), clock=FakeClock())
    cases: list[tuple[str, dict[str, Any]]] = [
        ("customer.updated", {"Customer ID": "C-1", "updated_at": "2026-01-02T03:04:05Z"}),
        ("customer.updated", {"customer_id": 7, "updated_at": 1_767_323_045}),
        ("customer.updated", {"customer_id": "C-1"}),
        ("task.created", {"task_id": "T-1", "customer_id": "C-1", "updated_at": "2026-01-02"}),
        ("customer.updated", {"customer_id": "C-1", "updated_at": "not a date"}),
        ("customer.updated", {"customer_id": "", "updated_at": "not a date"}),
        ("no.such.event", {"customer_id": "C-1"}),
    ]

    def outcome(call: Any) -> Any:
        try:
            return call()
        except Exception as exc:
            return (type(exc), str(exc))

    for event, payload in cases:
        both = outcome(
            lambda e=event, p=payload: (  # type: ignore[misc]
                mapper.entity_key(e, p),
                mapper.source_updated_at(e, p),
            )
        )
        assert outcome(lambda e=event, p=payload: mapper.identify(e, p)) == both, (event, payload)
        folded = fold_keys(payload)  # as the receiver passes it
        assert outcome(lambda e=event, p=folded: mapper.identify(e, p, folded=True)) == both
