"""The sandbox's in-memory world: locations and their records, tokens, OAuth grants, logs.

Records are stored in GHL's own JSON shapes (plain dicts), so routes hand them out as they are.
One `threading.RLock` guards every change: the server runs on one event loop, and tests read
the state from another thread while it runs.
"""

from __future__ import annotations

import random
import string
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from ghlsync._clock import SYSTEM_CLOCK, Clock
from ghlsync.sandbox import _pipelines as seed

Record = dict[str, Any]
UserType = Literal["Location", "Company"]

DEFAULT_LOCATION_ID = "loc_sandbox"
DEFAULT_TOKEN = "sandbox-token"  # noqa: S105 - a well-known test credential, documented
DEFAULT_CALENDAR_ID = "cal_sandbox"
DEFAULT_COMPANY_ID = "comp_sandbox"
DEFAULT_USER_ID = "usr_sandbox"
DEFAULT_CLIENT_ID = "sandbox-client"
DEFAULT_CLIENT_SECRET = "sandbox-secret"  # noqa: S105 - a well-known test credential
DEFAULT_APP_ID = "sandbox"
ACCESS_TOKEN_TTL = 86399


@dataclass(slots=True)
class Limits:
    """Burst and daily request limits of one rate-limit key (a location or a company)."""

    burst: int = 100
    interval_ms: int = 10_000
    daily: int = 200_000


@dataclass(slots=True)
class Location:
    """One sub-account and everything stored in it."""

    id: str
    name: str
    company_id: str
    limits: Limits
    allow_duplicate_contact: bool = False
    duplicate_priority: tuple[str, ...] = ("email", "phone")
    contacts: dict[str, Record] = field(default_factory=dict)
    tasks: dict[str, Record] = field(default_factory=dict)
    notes: dict[str, Record] = field(default_factory=dict)
    appointments: dict[str, Record] = field(default_factory=dict)
    appointment_notes: dict[str, Record] = field(default_factory=dict)
    calendars: dict[str, Record] = field(default_factory=dict)
    custom_fields: dict[str, Record] = field(default_factory=dict)
    tags: dict[str, Record] = field(default_factory=dict)
    users: dict[str, Record] = field(default_factory=dict)
    businesses: dict[str, Record] = field(default_factory=dict)
    pipelines: dict[str, Record] = field(default_factory=dict)
    opportunities: dict[str, Record] = field(default_factory=dict)
    lost_reasons: dict[str, Record] = field(default_factory=dict)
    workflows: dict[str, Record] = field(default_factory=dict)
    campaigns: dict[str, Record] = field(default_factory=dict)
    conversations: dict[str, Record] = field(default_factory=dict)  # by contact id
    messages: dict[str, Record] = field(default_factory=dict)
    # ("email", lower-cased) / ("phone", E.164) -> contact ids, oldest first: duplicate lookups
    # stay O(1) however many contacts a backfill creates.
    contact_index: dict[tuple[str, str], list[str]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a bearer token speaks for."""

    token: str
    user_type: UserType
    company_id: str
    location_id: str | None  # None for company (agency) tokens
    kind: Literal["pit", "oauth"]
    expires_at: float | None  # epoch seconds; None for Private Integration tokens

    @property
    def rate_key(self) -> str:
        """The resource the rate limits count against."""
        return self.location_id or self.company_id


@dataclass(slots=True)
class OAuthClient:
    """A marketplace app's credentials. No redirect URIs registered means any is accepted."""

    client_id: str
    client_secret: str
    redirect_uris: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Grant:
    """What an authorization code or a refresh token stands for."""

    client_id: str
    user_type: UserType
    company_id: str
    location_id: str | None
    redirect_uri: str | None = None
    used: bool = False


@dataclass(slots=True)
class Faults:
    """Probabilities of injected failures per API request, and the delay of a 'timeout'."""

    rate_429: float = 0.0
    rate_500: float = 0.0
    timeout: float = 0.0
    reset: float = 0.0
    timeout_seconds: float = 3.0


class SandboxState:
    """Everything the sandbox knows. `reset()` goes back to the start state."""

    def __init__(
        self,
        *,
        burst: int = 100,
        interval_ms: int = 10_000,
        daily: int = 200_000,
        clock: Clock = SYSTEM_CLOCK,
        seed: int | None = None,
        token_ttl: int = ACCESS_TOKEN_TTL,
    ) -> None:
        self.lock = threading.RLock()
        self.clock = clock
        self.default_limits = Limits(burst, interval_ms, daily)
        self.token_ttl = token_ttl
        self.rng = random.Random(seed)
        # Faults draw from their own generator: the n-th request's fault depends on the seed
        # and n only, not on how many ids concurrent requests made before it.
        self.fault_rng = random.Random(seed)
        self.webhook_url: str | None = None
        self.event_hook: Callable[[Record], None] | None = None
        self.reset_hooks: list[Callable[[], None]] = []
        self._seed = seed
        self.reset()

    def reset(self) -> None:
        """Forget every record, token, log and fault; recreate the start location."""
        with self.lock:
            self.rng.seed(self._seed)
            self.fault_rng.seed(self._seed)
            self.locations: dict[str, Location] = {}
            self.tokens: dict[str, Principal] = {}
            self.clients = {
                DEFAULT_CLIENT_ID: OAuthClient(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET)
            }
            self.codes: dict[str, Grant] = {}
            self.refresh_tokens: dict[str, Grant] = {}
            self.refresh_uses: Counter[str] = Counter()
            self.token_calls: Counter[str] = Counter()
            self.requests: list[Record] = []
            self.calls: Counter[str] = Counter()
            self.throttled: Counter[str] = Counter()
            self.faults = Faults()
            self.webhook_deliveries: list[Record] = []
            self.add_location(DEFAULT_LOCATION_ID, token=DEFAULT_TOKEN)
            for hook in self.reset_hooks:
                hook()

    def new_id(self, length: int = 20) -> str:
        """An opaque id shaped like GHL's (20 letters and digits)."""
        alphabet = string.ascii_letters + string.digits
        return "".join(self.rng.choice(alphabet) for _ in range(length))

    def add_location(
        self,
        location_id: str | None = None,
        *,
        token: str | None = None,
        limits: Limits | None = None,
        name: str | None = None,
    ) -> tuple[Location, str]:
        """Create a location with a Private Integration token, a calendar and a user."""
        with self.lock:
            loc_id = location_id or f"loc_{self.new_id(12)}"
            pit = token or f"pit-{self.new_id(24)}"
            lim = limits or Limits(
                self.default_limits.burst,
                self.default_limits.interval_ms,
                self.default_limits.daily,
            )
            location = Location(loc_id, name or f"Sandbox {loc_id}", DEFAULT_COMPANY_ID, lim)
            self.locations[loc_id] = location
            _seed_location(location)
            self.tokens[pit] = Principal(pit, "Location", DEFAULT_COMPANY_ID, loc_id, "pit", None)
            return location, pit

    def location(self, location_id: str) -> Location | None:
        """The location with this id, if any."""
        return self.locations.get(location_id)

    def limits_for(self, key: str) -> Limits:
        """Limits of a location, or the defaults for a company key."""
        location = self.locations.get(key)
        return location.limits if location else self.default_limits


def _seed_location(location: Location) -> None:
    """Give a new location the calendar and user every sandbox location starts with."""
    calendar_id = (
        DEFAULT_CALENDAR_ID if location.id == DEFAULT_LOCATION_ID else f"cal_{location.id}"
    )
    user_id = DEFAULT_USER_ID if location.id == DEFAULT_LOCATION_ID else f"usr_{location.id}"
    location.calendars[calendar_id] = {
        "id": calendar_id,
        "locationId": location.id,
        "name": "Sandbox calendar",
        "groupId": "",
        "isActive": True,
        "slotDuration": 30,
        "slotDurationUnit": "mins",
        "teamMembers": [{"userId": user_id}],
    }
    location.users[user_id] = {
        "id": user_id,
        "name": "Sandbox User",
        "firstName": "Sandbox",
        "lastName": "User",
        "email": f"{user_id}@sandbox.invalid",
        "phone": "",
        "extension": "",
        "roles": {"type": "account", "role": "admin", "locationIds": [location.id]},
    }
    _seed_pipelines(location)


def _seed_pipelines(location: Location) -> None:
    """Pipelines with stages, lost reasons, workflows and campaigns (see `_pipelines`)."""
    location.pipelines.update(seed.pipelines_for(location.id))
    location.lost_reasons.update(
        seed.named_records(location.id, "lost-reason", seed.DEFAULT_LOST_REASONS)
    )
    location.workflows.update(
        seed.named_records(location.id, "workflow", seed.DEFAULT_WORKFLOWS, status="published")
    )
    location.campaigns.update(
        seed.named_records(location.id, "campaign", seed.DEFAULT_CAMPAIGNS, status="published")
    )


def calendar_id_of(location: Location) -> str:
    """The id of the calendar a location was created with."""
    return next(iter(location.calendars))
