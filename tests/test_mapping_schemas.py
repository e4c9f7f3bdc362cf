"""Every mapped body is what GHL's official request schema accepts, with no unknown property
(GHL answers 422 to those). Schemas are read from the spec files, never copied."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest

from ghlsync.mapping import EntityType, MappedEntity
from ghlsync.mapping._shapes import BODY_FIELDS, NOT_ON_UPDATE
from tests._mapping_golden import EVENTS, golden_mapper, load_event

# entity type → (spec family, create schema(s), update schema, ids the engine adds on create)
SCHEMAS: dict[EntityType, tuple[str, tuple[str, ...], str, dict[str, str]]] = {
    "contact": (
        "contacts",
        ("UpsertContactDto", "CreateContactDto"),
        "UpdateContactDto",
        {"locationId": "loc_1"},
    ),
    "task": ("contacts", ("CreateTaskParams",), "UpdateTaskBody", {}),
    "note": ("contacts", ("NotesDTO",), "UpdateNoteDTO", {}),
    "appointment": (
        "calendars",
        ("AppointmentCreateSchema",),
        "AppointmentEditSchema",
        {"calendarId": "cal_1", "locationId": "loc_1", "contactId": "c_1"},
    ),
}
# Not body fields: ids the engine fills in, and tags/custom fields that travel separately.
ENGINE_FIELDS = {"locationId", "contactId", "calendarId", "tags", "customFields"}
NOT_MAPPED = {"dndSettings", "inboundDndSettings", "createNewIfDuplicateAllowed"}


@functools.cache
def _spec(spec_dir: Path, family: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((spec_dir / "apps" / f"{family}.json").read_text())
    return data


def strict_validator(spec_dir: Path, family: str, name: str) -> jsonschema.Validator:
    """The named schema with `additionalProperties: false`, its $refs resolving in the spec."""
    spec = _spec(spec_dir, family)
    schema = dict(spec["components"]["schemas"][name])
    schema["additionalProperties"] = False
    root = {**schema, "components": spec["components"]}
    return jsonschema.Draft202012Validator(root)


def mapped_entities() -> list[MappedEntity]:
    mapper = golden_mapper()
    entities: list[MappedEntity] = []
    for path in EVENTS:
        event, payload = load_event(path)
        if mapper.knows(event) and not path.stem.startswith("error_"):
            entities += [e for e in mapper.map(event, payload).entities if e.action != "delete"]
    return entities


def test_the_golden_set_exercises_every_entity_type() -> None:
    assert {e.type for e in mapped_entities()} == set(SCHEMAS)


@pytest.mark.parametrize("entity", mapped_entities(), ids=lambda e: f"{e.type}-{e.source_id}")
def test_mapped_bodies_validate_against_the_official_schemas(
    entity: MappedEntity, ghl_spec_dir: Path
) -> None:
    family, creates, update, ids = SCHEMAS[entity.type]
    update_body = entity.request_body("update")
    strict_validator(ghl_spec_dir, family, update).validate(update_body)
    if entity.type == "appointment" and "startTime" not in {**entity.defaults, **entity.body}:
        return  # e.g. a cancel that did not repeat the time: only an update is possible
    create_body = {**entity.request_body("create"), **ids}
    for name in creates:
        strict_validator(ghl_spec_dir, family, name).validate(create_body)


def test_the_strict_check_rejects_an_unknown_property(ghl_spec_dir: Path) -> None:
    validator = strict_validator(ghl_spec_dir, "contacts", "CreateTaskParams")
    body = {"title": "t", "dueDate": "2026-12-01T09:00:00-05:00", "completed": False}
    validator.validate(body)
    with pytest.raises(jsonschema.ValidationError):
        validator.validate({**body, "contactId": "c_1"})


@pytest.mark.parametrize("entity_type", list(SCHEMAS))
def test_known_body_fields_match_the_spec(entity_type: EntityType, ghl_spec_dir: Path) -> None:
    family, creates, update, _ = SCHEMAS[entity_type]
    schemas = _spec(ghl_spec_dir, family)["components"]["schemas"]
    for name in creates:
        spec_fields = set(schemas[name]["properties"]) - ENGINE_FIELDS - NOT_MAPPED
        assert spec_fields == BODY_FIELDS[entity_type], name
    update_fields = set(schemas[update]["properties"]) - ENGINE_FIELDS - NOT_MAPPED
    expected = BODY_FIELDS[entity_type] - NOT_ON_UPDATE[entity_type]
    assert update_fields == expected
