"""Declarative mapping: `ghlsync.yaml` → typed config; a DripJobs event → desired GHL entities.

Public API::

    load_config(path=None, *, environ=None) -> AppConfig
        path, else $GHLSYNC_CONFIG, else ./ghlsync.yaml if present, else the embedded preset;
        GHLSYNC_DATABASE_URL / _GHL_BASE_URL / _GHL_LOCATION_ID / _GHL_TOKEN /
        _GHL_CALENDAR_ID / _DRIPJOBS_SECRET override the file. Raises ConfigError.
    AppConfig.default() -> AppConfig          the embedded DripJobs preset (no env overrides)
        .environment: the environment it runs (None: the base keys); .environments: all
        .database_url, .ghl.{base_url, location_id, token: Secret|None, calendar_id, timezone},
        .dripjobs.{secret: Secret|None, max_body_bytes, timestamp_tolerance},
        .worker.{concurrency, max_attempts, lease_seconds, poll_interval},
        .defaults.{phone_region, timezone, task_due_days, task_due_hour, appointment_minutes, ...},
        .events: dict[str, EventRule], .fields, .tags, .custom_fields, .users
    preset_text() -> str                      the commented preset YAML
    render_preset(sandbox_url=None) -> str    the same, pointed at a sandbox (`ghlsync init`)
    config_source(path=None) -> str           the file load_config would read
    selected_environment(name)                 context manager: load_config runs environment
                                               `name` (the CLI's --env); else $GHLSYNC_ENV,
                                               else the file's `environment:`

    Mapper(config, *, clock=SYSTEM_CLOCK)
        .events -> list[str];  .knows(event) -> bool
        .entity_key(event, payload) -> EntityKey          UnknownEventError | MappingError
        .map(event, payload) -> MappedEvent               UnknownEventError | MappingError
        .source_updated_at(event, payload) -> datetime | None   the rule's timestamp, UTC
        .identify(event, payload, *, folded=False) -> (EntityKey, datetime | None)
                                               both, payload folded once (not at all: folded)
        (payload keys are folded again, so raw Zap keys work too)

    EntityKey(type, source_id)                 str() == "task:T-1"
    MappedEvent(event, entities)               entities in write order: parent contact first;
        .primary (the entity the event is about), .to_dict()
    MappedEntity(type, source_id, action, body, defaults, tags_add, tags_remove_prefixes,
                 custom_fields, parent, source_updated_at)
        type:   "contact" | "task" | "note" | "appointment"
        action: "upsert" | "delete" | "complete" (task: completed=True is in body)
                | "cancel" (appointment: appointmentStatus="cancelled" is in body)
        body:   GHL field names, what the event says; no locationId/contactId/calendarId/tags/
                customFields. Contact bodies are UpsertContactDto-shaped.
        defaults: create-only fill-ins for GHL's required fields (task title/dueDate/completed,
                appointment title); never send them on update.
        .request_body("create") -> defaults + body, checked for GHL's required fields
                (MappingError if e.g. an appointment has no startTime);
        .request_body("update") -> body minus what the update DTO lacks (contact: companyName,
                gender -- PUT /contacts/{id} answers 422 to them; prefer /contacts/upsert).
        tags_add: normalised (lower-case) tags to add to the contact;
        tags_remove_prefixes: remove the contact's other tags starting with these;
        .tag_delta(current_tags) -> TagDelta(add, remove)  the two calls to make, if any.
        custom_fields: {"contact.roof_type": value} -- GHL custom field keys, ids resolved by
                the engine.
        parent: EntityKey of the contact (task/note/appointment); None for contacts and for a
                delete that did not name its contact.
        source_updated_at: aware UTC datetime from `updated_at`, or None.
        .key -> EntityKey; .to_dict() JSON-ready (for preview).
    content_hash(entity) -> str               sha256 over action, body, tags, custom fields
                                               (not defaults): equal hash = nothing to write.

Errors (all ValueError; all Fatal for the engine): ConfigError(problems),
MappingError(field, value, reason) with a readable str() for dead letters,
UnknownEventError(event, known) -- a MappingError.
"""

from ghlsync.mapping._config import (
    Action,
    AppConfig,
    Defaults,
    DripJobsSettings,
    EntityType,
    EventRule,
    FieldRule,
    GHLSettings,
    TagRule,
    WorkerSettings,
)
from ghlsync.mapping._environments import selected_environment
from ghlsync.mapping._errors import ConfigError, MappingError, UnknownEventError
from ghlsync.mapping._load import (
    ENV_OVERRIDES,
    config_source,
    load_config,
    preset_text,
    render_preset,
)
from ghlsync.mapping._mapper import Mapper
from ghlsync.mapping._model import EntityKey, MappedEntity, MappedEvent, TagDelta, content_hash

__all__ = [
    "ENV_OVERRIDES",
    "Action",
    "AppConfig",
    "ConfigError",
    "Defaults",
    "DripJobsSettings",
    "EntityKey",
    "EntityType",
    "EventRule",
    "FieldRule",
    "GHLSettings",
    "MappedEntity",
    "MappedEvent",
    "Mapper",
    "MappingError",
    "TagDelta",
    "TagRule",
    "UnknownEventError",
    "WorkerSettings",
    "config_source",
    "content_hash",
    "load_config",
    "preset_text",
    "render_preset",
    "selected_environment",
]
