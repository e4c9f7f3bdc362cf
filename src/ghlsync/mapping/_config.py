"""The typed shape of `ghlsync.yaml`: every key, its type, its default and its allowed values.

Validation here is structural (pydantic, unknown keys are errors); the checks that need
several keys at once (an action the entity type allows, a GHL field the entity accepts) are in
`_checks.py`, so both kinds of problem are reported together with their key paths.
"""

from __future__ import annotations

import zoneinfo
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    field_validator,
)

from ghlsync._secret import Secret
from ghlsync.mapping._backfill import BackfillSettings
from ghlsync.mapping._environments import ENVIRONMENT_NAME
from ghlsync.mapping._opportunity_settings import OpportunitySettings
from ghlsync.mapping._reconcile_settings import ReconcileSettings
from ghlsync.mapping._writeback import WritebackSettings

RuleEntity = Literal["contact", "task", "note", "appointment"]
# An opportunity is not the entity of an event rule: `opportunities:` adds one to deal events.
EntityType = RuleEntity | Literal["opportunity"]
Action = Literal["upsert", "delete", "complete", "cancel"]
TransformName = Literal[
    "strip",
    "lower",
    "tag",
    "email",
    "phone_e164",
    "name_split",
    "name_join",
    "join",
    "date",
    "datetime",
    "status_completed",
    "appointment_status",
    "user",
]
Scalar = str | int | float | bool


def _to_secret(value: object) -> object:
    if value is None or isinstance(value, Secret):
        return value
    if isinstance(value, str):
        return Secret(value) if value else None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return Secret(str(value))  # YAML reads an all-digit token as a number
    return value  # anything else fails the isinstance check with a clear type error


MaskedSecret = Annotated[Secret, BeforeValidator(_to_secret), PlainSerializer(str, return_type=str)]


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid", populate_by_name=True, arbitrary_types_allowed=True, frozen=True
    )


def _valid_zone(name: str) -> str:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as error:
        raise ValueError(f"{name!r} is not an IANA time zone (e.g. America/New_York)") from error
    return name


class GHLSettings(_Model):
    """Where and as whom ghlsync writes to GoHighLevel."""

    base_url: str = Field("https://services.leadconnectorhq.com", pattern=r"^https?://\S+$")
    location_id: str | None = None
    token: MaskedSecret | None = None
    calendar_id: str | None = None
    timezone: str | None = None
    # Verifies GHL's `x-ghl-signature` (Ed25519) on POST /hooks/ghl: PEM, base64 or hex.
    webhook_public_key: str | None = None
    # Our marketplace app: GHL signs every app's webhooks with one key, so INSTALL, UNINSTALL
    # and PLAN_CHANGE are acted on only when their `appId` is this one. Unset: derived from
    # GHLSYNC_GHL_CLIENT_ID (`<appId>-<suffix>`); neither: those events are all refused.
    app_id: str | None = Field(None, min_length=1)
    # GHL API family per connection (docs/api-versions.md); a location's stored value wins.
    api_version: Literal["v2", "v3"] = "v2"

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        return None if value is None else _valid_zone(value)


MIN_SECRET_CHARS = 16


def _long_enough(value: Secret | None) -> Secret | None:
    # A short shared secret can be guessed over the network; the value is never echoed.
    if value is not None and len(value.reveal()) < MIN_SECRET_CHARS:
        raise ValueError(
            f"is {len(value.reveal())} characters; use at least {MIN_SECRET_CHARS} (e.g. the "
            'output of `python -c "import secrets; print(secrets.token_urlsafe(32))"`)'
        )
    return value


class DripJobsSettings(_Model):
    """The inbound webhook: its secret and its limits."""

    secret: MaskedSecret | None = None
    max_body_bytes: int = Field(256 * 1024, ge=1024)
    timestamp_tolerance: int = Field(300, ge=1, description="seconds")

    _secret_length = field_validator("secret")(_long_enough)


class ServerSettings(_Model):
    """The HTTP server (`ghlsync serve`): its operator token and its connection limits."""

    # Bearer token for /metrics and the detail of /healthz; unset: both are public.
    admin_token: MaskedSecret | None = None
    header_timeout: float = Field(10.0, gt=0, description="seconds to send the headers")
    body_timeout: float = Field(30.0, gt=0, description="seconds to send the body")
    keep_alive: float = Field(5.0, gt=0, description="seconds an idle connection is kept")
    max_connections: int = Field(1000, ge=1, description="open connections at once")

    _token_length = field_validator("admin_token")(_long_enough)


class WorkerSettings(_Model):
    """How workers claim and retry work."""

    # Unset: by the store (`engine.default_concurrency`: 32 on PostgreSQL, 16 on SQLite).
    concurrency: int | None = Field(None, ge=1)
    max_attempts: int = Field(8, ge=1)
    lease_seconds: float = Field(60.0, gt=0)
    poll_interval: float = Field(0.5, gt=0)


class Defaults(_Model):
    """Values used when an event leaves something out."""

    phone_region: str = Field("US", min_length=2, max_length=2)
    timezone: str = "America/New_York"
    task_due_days: int = Field(1, ge=0)
    task_due_hour: int = Field(9, ge=0, le=23)
    appointment_minutes: int = Field(60, ge=1)
    task_title: str = "DripJobs task"
    appointment_title: str = "DripJobs appointment"

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return _valid_zone(value)

    @field_validator("phone_region")
    @classmethod
    def _region(cls, value: str) -> str:
        return value.upper()


def _listify(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


# `from: email` and `from: [email]` mean the same; a one-item list is stored either way.
Names = Annotated[list[Annotated[str, Field(min_length=1)]], BeforeValidator(_listify)]
Transforms = Annotated[list[TransformName], BeforeValidator(_listify)]


class FieldRule(_Model):
    """One source field (or several) → one GHL field (or several), through transforms."""

    sources: Names = Field(alias="from", min_length=1)
    targets: Names = Field(alias="to", min_length=1)
    transforms: Transforms = Field(["strip"], alias="transform")
    default: Scalar | None = None


class TagRule(_Model):
    """A tag on the contact: fixed (`tag: dripjobs`) or from a field (`tag: "source:{value}"`)."""

    source: str | None = Field(None, alias="from")
    tag: str = Field(min_length=1)
    replace_prefix: str | None = None


class CustomFieldRule(_Model):
    """A source field → a GHL contact custom field, by its key (`contact.roof_type`)."""

    key: str = Field(pattern=r"^contact\.[A-Za-z0-9_]+$")
    transforms: Transforms = Field(["strip"], alias="transform")


def _custom_field_short_form(value: Any) -> Any:
    return {"key": value} if isinstance(value, str) else value


CustomField = Annotated[CustomFieldRule, BeforeValidator(_custom_field_short_form)]


class FieldMaps(_Model):
    """Field rules shared by every event of an entity type; the first present source wins."""

    contact: list[FieldRule] = []
    task: list[FieldRule] = []
    note: list[FieldRule] = []
    appointment: list[FieldRule] = []

    def for_type(self, entity: EntityType) -> list[FieldRule]:
        rules: list[FieldRule] = getattr(self, entity, [])  # opportunities have none
        return rules


class EventRule(_Model):
    """What one DripJobs event means in GHL."""

    entity: RuleEntity
    id: str = Field(min_length=1)
    action: Action = "upsert"
    contact: str | None = None
    fields: list[FieldRule] = []
    set: dict[str, Scalar] = {}
    tags: list[TagRule] = []
    timestamp: str | None = "updated_at"


class EnvironmentSettings(_Model):
    """One of `environments:`: what it overrides (docs/environments.md)."""

    database_url: str | None = Field(None, pattern=r"^[a-z][a-z0-9+]*://")
    ghl: GHLSettings | None = None
    writeback: WritebackSettings | None = None


EnvironmentName = Annotated[str, Field(pattern=ENVIRONMENT_NAME)]


class AppConfig(_Model):
    """The whole `ghlsync.yaml`."""

    database_url: str = Field("sqlite:///ghlsync.db", pattern=r"^[a-z][a-z0-9+]*://")
    ghl: GHLSettings = GHLSettings()
    dripjobs: DripJobsSettings = DripJobsSettings()
    server: ServerSettings = ServerSettings()
    worker: WorkerSettings = WorkerSettings()
    defaults: Defaults = Defaults()
    fields: FieldMaps = FieldMaps()
    events: dict[str, EventRule] = {}
    custom_fields: dict[str, CustomField] = {}
    tags: list[TagRule] = []
    users: dict[str, str] = {}
    writeback: WritebackSettings = WritebackSettings()
    backfill: BackfillSettings = BackfillSettings()
    opportunities: OpportunitySettings = OpportunitySettings()
    reconcile: ReconcileSettings = ReconcileSettings()
    # Automations (docs/recipes.md), validated by `engine.flows.recipes` against its registries.
    recipes: list[dict[str, Any]] = []
    # The environment this config runs (merged in by the loader); `environments:` all of them.
    environment: EnvironmentName | None = None
    environments: dict[EnvironmentName, EnvironmentSettings] = {}

    @classmethod
    def default(cls) -> AppConfig:
        """The embedded DripJobs preset, without environment overrides."""
        from ghlsync.mapping._load import load_preset

        return load_preset()

    @property
    def output_timezone(self) -> str:
        """The zone GHL date-times are written in: the location's, else the default."""
        return self.ghl.timezone or self.defaults.timezone
