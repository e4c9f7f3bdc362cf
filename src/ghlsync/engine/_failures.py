"""What the worker does after a failed sync, and the words it leaves for people. Pure.

| raised                                   | next step                                   |
|------------------------------------------|---------------------------------------------|
| `RateLimitedError` (429)                 | retry when the location's pause ends; the   |
|                                          | attempt is not counted                      |
| `SkippableError` (404, 409)              | complete, with an audit note                |
| `FatalError` (400, 401, 403, 422, ...)   | dead letter                                 |
|   incl. `AmbiguousContactError` (a new   |   (its reason names the contact ids)        |
|   customer matching two GHL contacts)    |                                             |
|   and `EnvironmentMismatchError` (the    |   (its reason names both environments)      |
|   location is another environment's)     |                                             |
| `MappingError` (incl. unknown event)     | dead letter                                 |
| `SecretKeyError`, `ConfigError`          | pause the location (a configuration error:  |
|   (no key to open a stored token, an     | every item of it would fail alike); retry   |
|   override that no longer validates)     | when the pause ends, the attempt not counted|
| `RetriableError` (5xx, transport, ...)   | retry with backoff; dead letter after       |
|                                          | `max_attempts`                              |
|   but `ParentNotSyncedError` while the   |   "waiting": tried again when the contact's |
|   contact's own item is still queued     |   item comes due, the attempt not counted   |
|   (decided by the worker: it reads the   |   (the contact may wait long: a location    |
|   queue)                                 |   out of budget, a dead worker's lease)     |
| anything else (a bug)                    | like retriable: it may be transient, and it |
|                                          | must never crash the worker                 |
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ghlsync.engine.flows.to_ghl._contact_match import AmbiguousContactError
from ghlsync.engine.locations._environment import EnvironmentMismatchError
from ghlsync.ghl._crypto import SecretKeyError
from ghlsync.ghl._errors import (
    AuthenticationError,
    FatalError,
    GHLError,
    OutcomeUnknownError,
    RateLimitedError,
    RetriableError,
    SkippableError,
    TransportError,
    ValidationError,
)
from ghlsync.mapping import ConfigError, MappingError

Kind = Literal["throttled", "skip", "dead", "retry", "paused", "waiting"]

CONFIG_PAUSE_SECONDS = 60.0
"""How long a location with a configuration error is left alone before it is tried again."""

_ENTITY_WORDS = {
    "contact": "contact",
    "task": "task",
    "note": "note",
    "appointment": "appointment",
    "opportunity": "opportunity",
}


@dataclass(frozen=True, slots=True)
class Failure:
    """The decision for one failed sync."""

    kind: Kind
    reason: str  # for people: dead letters, `ghlsync status`, the audit log
    error_class: str


def classify_failure(
    error: BaseException, *, entity_type: str, event: str, token_fix: str | None = None
) -> Failure:
    """Decide what happens after `error` while syncing an entity of `entity_type`.

    `token_fix` is what to do when GHL refuses the location's token (401): it depends on
    where the token came from (the config, a stored Private Integration token, OAuth).
    """
    name = type(error).__name__
    if isinstance(error, SecretKeyError | ConfigError):
        return Failure("paused", configuration_reason(error), name)
    if isinstance(error, RateLimitedError):
        return Failure("throttled", f"GHL rate limit reached (429): {error}", name)
    if isinstance(error, SkippableError):
        return Failure("skip", f"skipped: {describe_ghl(error, entity_type)}", name)
    if isinstance(error, AmbiguousContactError | EnvironmentMismatchError):  # not GHL's refusal
        return Failure("dead", error.message, name)
    if isinstance(error, FatalError):
        return Failure("dead", describe_ghl(error, entity_type, token_fix), name)
    if isinstance(error, MappingError):
        return Failure("dead", f"cannot map {event} for the {entity_type}: {error}", name)
    if isinstance(error, RetriableError):
        return Failure("retry", describe_ghl(error, entity_type), name)
    return Failure("retry", f"unexpected error {name}: {error}", name)


def configuration_reason(error: BaseException) -> str:
    """The reason a location is paused: the configuration error, and that it waits."""
    text = " / ".join(str(error).splitlines())
    return (
        f"configuration error, location paused (tried again every "
        f"{CONFIG_PAUSE_SECONDS:g} s, attempts not counted): {text}"
    )


def describe_ghl(error: GHLError, entity_type: str, token_fix: str | None = None) -> str:
    """One readable line: what GHL said about the entity, with the trace id support asks for."""
    entity = _ENTITY_WORDS.get(entity_type, entity_type)
    trace = f" (trace {error.trace_id})" if error.trace_id else ""
    status = f"{error.status} " if error.status is not None else ""
    if isinstance(error, AuthenticationError):
        fix = token_fix if token_fix and error.status == 401 else None
        return (
            f"GHL did not accept the token: {status}{error.message}{trace}; "
            f"{fix or 'reconnect the app (`ghlsync auth login`)'}"
        )
    if isinstance(error, ValidationError):
        return f"GHL would reject the {entity}: {error.message}"
    if isinstance(error, OutcomeUnknownError):
        return f"no answer from GHL after sending the {entity}: {error.message}{trace}"
    if isinstance(error, FatalError):
        return f"GHL rejected the {entity}: {status}{error.message}{trace}"
    if isinstance(error, SkippableError):
        return f"GHL answered {status}for the {entity}: {error.message}{trace}"
    if isinstance(error, TransportError):
        return f"could not reach GHL for the {entity}: {error.message}"
    if error.status is None:  # not GHL's answer: e.g. the contact of a task is not synced yet
        return f"the {entity} must wait: {error.message}"
    return f"GHL failed on the {entity}: {status}{error.message}{trace}"


def gave_up(reason: str, attempts: int) -> str:
    """The dead-letter reason after the retries ran out."""
    return f"gave up after {attempts} attempts: {reason}"
