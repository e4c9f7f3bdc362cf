"""The mapper: entity keys, key folding, precedence, parents, tags, defaults, hashes, errors."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ghlsync._clock import FakeClock
from ghlsync.mapping import (
    AppConfig,
    EntityKey,
    MappedEntity,
    Mapper,
    MappingError,
    UnknownEventError,
    content_hash,
    load_config,
)

NOW = 1_796_000_000.0  # 2026-11-28 20:33 in New York


def mapper(config: AppConfig | None = None) -> Mapper:
    return Mapper(config or AppConfig.default(), clock=FakeClock(start=NOW))


def custom(tmp_path: Path, text: str) -> AppConfig:
    path = tmp_path / "ghlsync.yaml"
    path.write_text(text)
    return load_config(path, environ={})


def only(event: str, payload: dict[str, Any], m: Mapper | None = None) -> MappedEntity:
    entities = (m or mapper()).map(event, payload).entities
    assert len(entities) == 1
    return entities[0]


def test_entity_key_folds_keys_and_stringifies_ids() -> None:
    m = mapper()
    assert m.entity_key("task.created", {"Task ID": 42}) == EntityKey("task", "42")
    assert m.entity_key("customer.updated", {"customerId": " C-1 "}) == EntityKey("contact", "C-1")
    assert str(EntityKey("note", "N-1")) == "note:N-1"


def test_unknown_event_is_a_mapping_error_listing_known_events() -> None:
    with pytest.raises(UnknownEventError) as caught:
        mapper().entity_key("estimate.emailed", {})
    assert isinstance(caught.value, MappingError)
    assert "task.created" in caught.value.known
    assert str(caught.value).startswith("event: 'estimate.emailed' is not a configured event")


@pytest.mark.parametrize("value", [None, "", "  ", True, {"id": 1}])
def test_a_missing_id_names_the_field(value: object) -> None:
    with pytest.raises(MappingError) as caught:
        mapper().entity_key("task.created", {"task_id": value})
    assert caught.value.field == "task_id"
    assert "the task id is required" in str(caught.value)


@pytest.mark.parametrize(
    "key", ["first_name", "First Name", "firstName", "first-name", "FIRST_NAME"]
)
def test_key_folding_through_map(key: str) -> None:
    entity = only("customer.created", {"Customer ID": "C-1", key: "Ann"})
    assert entity.body == {"firstName": "Ann"}


def test_explicit_names_win_over_a_split_full_name() -> None:
    both = only("customer.created", {"customer_id": "1", "first_name": "Ann", "name": "X Y"})
    assert both.body == {"firstName": "Ann", "lastName": "Y"}
    split = only("customer.created", {"customer_id": "1", "name": "Ann Marie Lee"})
    assert split.body == {"firstName": "Ann", "lastName": "Marie Lee"}


def test_blank_fields_are_left_out() -> None:
    entity = only("customer.updated", {"customer_id": "1", "email": "", "phone": None, "city": " "})
    assert entity.body == {}


def test_invalid_values_name_the_field_and_value() -> None:
    with pytest.raises(MappingError) as caught:
        mapper().map("customer.created", {"customer_id": "1", "Email": "ann@"})
    error = caught.value
    assert (error.field, error.value) == ("email", "ann@")
    assert str(error) == "email: 'ann@' is not an email address"


def test_a_child_event_upserts_its_contact_first() -> None:
    mapped = mapper().map(
        "note.created",
        {"note_id": "N-1", "customer_id": "C-1", "email": "a@b.co", "note_body": "x"},
    )
    contact, note = mapped.entities
    assert (contact.key, contact.action, contact.body) == (
        EntityKey("contact", "C-1"),
        "upsert",
        {"email": "a@b.co"},
    )
    assert note.parent == EntityKey("contact", "C-1")
    assert mapped.primary is note


def test_a_child_event_without_contact_fields_only_references_the_contact() -> None:
    mapped = mapper().map(
        "note.created", {"note_id": "N-1", "customer_id": "C-1", "note_body": "x"}
    )
    assert [e.type for e in mapped.entities] == ["note"]
    assert mapped.entities[0].parent == EntityKey("contact", "C-1")


def test_a_child_event_needs_its_contact_id() -> None:
    with pytest.raises(MappingError) as caught:
        mapper().map("note.created", {"note_id": "N-1", "note_body": "x"})
    assert caught.value.field == "customer_id"


def test_stage_tags_replace_the_previous_stage() -> None:
    entity = only("deal.stage_changed", {"customer_id": "1", "deal_stage": " Estimate  Scheduled"})
    assert entity.tags_add == ("deal:estimate scheduled",)
    assert entity.tags_remove_prefixes == ("deal:",)
    delta = entity.tag_delta(["VIP", "Deal:Warm Leads", "deal:estimate scheduled", "source:x"])
    assert delta.add == []
    assert delta.remove == ["deal:warm leads"]
    assert entity.tag_delta([]).add == ["deal:estimate scheduled"]


def test_an_absent_stage_leaves_stage_tags_alone() -> None:
    entity = only("deal.stage_changed", {"customer_id": "1"})
    assert entity.tags_add == ()
    assert entity.tags_remove_prefixes == ()


def test_task_defaults_fill_only_what_ghl_requires_on_create() -> None:
    task = only("task.created", {"task_id": "T", "customer_id": "C", "task_title": "Call"})
    assert task.body == {"title": "Call"}
    assert task.defaults == {"completed": False, "dueDate": "2026-11-30T09:00:00-05:00"}
    assert task.request_body("create") == {
        "title": "Call",
        "completed": False,
        "dueDate": "2026-11-30T09:00:00-05:00",
    }
    assert task.request_body("update") == {"title": "Call"}


def test_defaults_follow_the_config(tmp_path: Path) -> None:
    text = (Path(__file__).parent.parent / "src/ghlsync/mapping/preset.yaml").read_text()
    text = text.replace("task_due_days: 1", "task_due_days: 3").replace(
        "appointment_minutes: 60", "appointment_minutes: 90"
    )
    m = mapper(custom(tmp_path, text))
    task = only("task.created", {"task_id": "T", "customer_id": "C"}, m)
    assert task.defaults["dueDate"] == "2026-12-02T09:00:00-05:00"
    appointment = only(
        "appointment.scheduled",
        {"appointment_id": "A", "customer_id": "C", "appointment_start": "12/03/2026 10:00 AM"},
        m,
    )
    assert appointment.body["endTime"] == "2026-12-03T11:30:00-05:00"


def test_complete_and_cancel_force_the_state() -> None:
    task = only("task.completed", {"task_id": "T", "customer_id": "C", "task_status": "open"})
    assert task.body["completed"] is True
    appointment = only("appointment.canceled", {"appointment_id": "A", "customer_id": "C"})
    assert appointment.body["appointmentStatus"] == "cancelled"


def test_an_appointment_cannot_be_created_without_a_start() -> None:
    appointment = only("appointment.canceled", {"appointment_id": "A", "customer_id": "C"})
    # The error names the DripJobs field the sender must map, then GHL's own name for it.
    with pytest.raises(
        MappingError, match=r"^appointment_start: .*appointment in GHL \(startTime\)"
    ):
        appointment.request_body("create")


def test_update_bodies_drop_what_put_contacts_rejects() -> None:
    contact = only("customer.updated", {"customer_id": "1", "company_name": "Acme", "city": "X"})
    assert contact.request_body("create") == {"companyName": "Acme", "city": "X"}
    assert contact.request_body("update") == {"city": "X"}


def test_source_updated_at_is_utc() -> None:
    entity = only("customer.updated", {"customer_id": "1", "updated_at": "11/21/2026 9:15 AM"})
    assert entity.source_updated_at == datetime(2026, 11, 21, 14, 15, tzinfo=UTC)
    with pytest.raises(MappingError, match="updated_at: 'soon' is not a date-time"):
        mapper().map("customer.updated", {"customer_id": "1", "updated_at": "soon"})


def test_source_updated_at_without_mapping() -> None:
    m = mapper()
    payload = {"Task ID": "T", "Updated At": 1796144400, "task_due": "never"}
    assert m.source_updated_at("task.updated", payload) == datetime(2026, 12, 1, 17, tzinfo=UTC)
    assert m.source_updated_at("task.updated", {"task_id": "T"}) is None


def test_custom_fields_users_and_event_rules(tmp_path: Path) -> None:
    config = custom(
        tmp_path,
        """
fields:
  contact: [{from: first_name, to: firstName}]
  task: [{from: task_assignee, to: assignedTo, transform: user}]
events:
  customer.created:
    entity: contact
    id: customer_id
    fields: [{from: nickname, to: firstName}]
    set: {country: US}
    tags: [{tag: VIP}]
  task.created: {entity: task, id: task_id, contact: customer_id}
custom_fields:
  roof_type: contact.roof_type
  install_date: {key: contact.install_date, transform: date}
users: {"Jane Roe": u_123}
""",
    )
    m = mapper(config)
    contact = only(
        "customer.created",
        {"customer_id": "1", "first_name": "Ann", "nickname": "Annie", "Roof Type": "Metal ",
         "install_date": "12/01/2026"},
        m,
    )  # fmt: skip
    assert contact.body == {"firstName": "Annie", "country": "US"}
    assert contact.tags_add == ("vip",)
    assert contact.custom_fields == {
        "contact.roof_type": "Metal",
        "contact.install_date": "2026-12-01",
    }
    task = m.map("task.created", {"task_id": "T", "customer_id": "1", "task_assignee": "jane roe"})
    assert task.entities[-1].body == {"assignedTo": "u_123"}
    with pytest.raises(MappingError, match="install_date: 'later' is not a date"):
        m.map("customer.created", {"customer_id": "1", "install_date": "later"})


def test_content_hash_is_stable_and_ignores_create_defaults() -> None:
    payload = {"customer_id": "1", "first_name": "Ann", "email": "a@b.co", "deal_stage": "Won"}
    reordered = dict(reversed(list(payload.items())))
    one = only("deal.stage_changed", payload)
    assert content_hash(one) == content_hash(only("deal.stage_changed", reordered))
    changed = only("deal.stage_changed", {**payload, "deal_stage": "Lost"})
    assert content_hash(one) != content_hash(changed)
    task = {"task_id": "T", "customer_id": "C"}
    later = Mapper(AppConfig.default(), clock=FakeClock(start=NOW + 86_400 * 3))
    assert only("task.created", task).defaults != only("task.created", task, later).defaults
    assert content_hash(only("task.created", task)) == content_hash(
        only("task.created", task, later)
    )


def test_mapped_events_render_as_json_ready_dicts() -> None:
    import json

    mapped = mapper().map("task.created", {"task_id": "T", "customer_id": "C", "email": "a@b.co"})
    data = json.loads(json.dumps(mapped.to_dict()))
    assert data["event"] == "task.created"
    assert [e["type"] for e in data["entities"]] == ["contact", "task"]
    assert data["entities"][1]["parent"] == "contact:C"


FIELDS = [
    "customer_id", "first_name", "last_name", "name", "email", "phone", "zip", "lead_source",
    "deal_stage", "task_id", "task_due", "task_status", "note_id", "note_body", "appointment_id",
    "appointment_start", "appointment_end", "appointment_status", "updated_at", "other",
]  # fmt: skip
VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=30),
    st.sampled_from(["2026-12-01", "12/01/2026 2:30 PM", "+12125550100", "a@b.co", "done"]),
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    event=st.sampled_from(sorted(AppConfig.default().events)),
    payload=st.dictionaries(st.sampled_from(FIELDS), VALUES, max_size=12),
)
def test_any_payload_maps_or_raises_a_mapping_error(event: str, payload: dict[str, Any]) -> None:
    m = mapper()
    try:
        mapped = m.map(event, payload)
    except MappingError as error:
        assert str(error)
        return
    assert mapped.primary.key == m.entity_key(event, payload)
    for entity in mapped.entities:
        content_hash(entity)
        entity.to_dict()


def test_errors_survive_pickling_for_process_pools() -> None:
    import pickle

    from ghlsync.mapping import ConfigError

    for error in (
        MappingError("phone", "555", "is not a valid phone number"),
        UnknownEventError("x.y", ["a.b"]),
        ConfigError(["f: k: bad"]),
    ):
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error)
        assert str(copy) == str(error)
