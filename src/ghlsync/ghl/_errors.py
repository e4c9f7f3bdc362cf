"""Errors of the GHL client, grouped by what the engine does next.

Exception tree:

    GHLError                      anything that went wrong talking to GHL
    ├── FatalError                dead-letter the work item; retrying cannot help
    │   ├── BadRequestError           400 (also `invalid_grant` on a used refresh token)
    │   ├── PermissionDeniedError     403 (scope missing, location not in token)
    │   ├── UnprocessableError        422 (unknown property, bad value)
    │   ├── ValidationError           our own check rejected the body before sending
    │   ├── AuthenticationError       401 that a refresh did not cure
    │   │   └── ReconnectNeededError  no token can be had for the key: the user must log in again
    │   └── UnexpectedStatusError     any other 4xx we do not know
    ├── RetriableError            back off and requeue
    │   ├── ServerError               5xx
    │   ├── RateLimitedError          429 (the limiter has paused the key)
    │   ├── TransportError            the request never reached GHL (connect error, DNS, pool)
    │   └── OutcomeUnknownError       a non-idempotent write went out and no answer came back:
    │                                 resolve by lookup, never by blind re-create
    └── SkippableError            record and continue
        ├── NotFoundError             404 (already deleted, or never there)
        └── ConflictError             409

`classify(status, body, headers)` maps an HTTP answer to its class; the client raises it.
`str(error)` leads with GHL's `traceId` (the one thing GHL support asks for), then the
request line with the path only (never a token or query string), then GHL's message.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "AuthenticationError",
    "BadRequestError",
    "ConflictError",
    "FatalError",
    "GHLError",
    "NotFoundError",
    "OutcomeUnknownError",
    "PermissionDeniedError",
    "RateLimitedError",
    "ReconnectNeededError",
    "RetriableError",
    "ServerError",
    "SkippableError",
    "TransportError",
    "UnexpectedStatusError",
    "UnprocessableError",
    "ValidationError",
    "classify",
]


class GHLError(Exception):
    """Something went wrong talking to GHL; carries what GHL answered."""

    def __init__(
        self,
        message: str = "",
        *,
        status: int | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        self.status = status
        self.body = body
        self.headers: dict[str, str] = {k.lower(): v for k, v in (headers or {}).items()}
        self.method = method
        self.path = path
        self.trace_id = _trace_id(body, self.headers)
        self.message = message or _message(body) or type(self).__name__
        super().__init__(self.message)

    def __str__(self) -> str:
        parts = [f"Request {self.trace_id}:"] if self.trace_id else []
        if self.method and self.path:
            parts.append(f"{self.method} {self.path}")
        if self.status is not None:
            parts.append(f"-> {self.status}")
        parts.append(self.message)
        return " ".join(parts)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status={self.status!r}, trace_id={self.trace_id!r}, "
            f"method={self.method!r}, path={self.path!r}, message={self.message!r})"
        )


class FatalError(GHLError):
    """Retrying cannot help: dead-letter the work item with this reason."""


class BadRequestError(FatalError):
    """400: GHL rejected the request as malformed."""


class PermissionDeniedError(FatalError):
    """403: the token lacks a scope or access to the location."""


class UnprocessableError(FatalError):
    """422: GHL rejected a property or value (unknown fields are rejected this way)."""


class ValidationError(FatalError):
    """Our own model check rejected the request before it was sent (GHL would answer 422)."""


class AuthenticationError(FatalError):
    """401 even after one refresh: the token is not accepted."""


class ReconnectNeededError(AuthenticationError):
    """No usable token for the key; the user must reconnect the app."""


class UnexpectedStatusError(FatalError):
    """A status this client has no rule for."""


class RetriableError(GHLError):
    """Transient: back off and requeue."""


class ServerError(RetriableError):
    """5xx from GHL."""


class RateLimitedError(RetriableError):
    """429: the key is over its burst or daily budget."""


class TransportError(RetriableError):
    """The request did not reach GHL (connect error, DNS, pool timeout)."""


class OutcomeUnknownError(RetriableError):
    """A non-idempotent write was sent but no answer came back; look up before re-creating."""


class SkippableError(GHLError):
    """Record and continue (e.g. deleting what is already gone)."""


class NotFoundError(SkippableError):
    """404: the object does not exist (any more)."""


class ConflictError(SkippableError):
    """409: GHL reports a conflicting object (e.g. a duplicate)."""


_BY_STATUS: dict[int, type[GHLError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: UnprocessableError,
    429: RateLimitedError,
}


def classify(
    status: int, body: Any = None, headers: Mapping[str, str] | None = None
) -> type[GHLError]:
    """The error class for an HTTP answer (body and headers are for future special cases)."""
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    if status >= 500:
        return ServerError
    return UnexpectedStatusError


def _trace_id(body: Any, headers: Mapping[str, str]) -> str | None:
    if isinstance(body, Mapping):
        value = body.get("traceId") or body.get("trace_id")
        if isinstance(value, str) and value:
            return value
    return headers.get("traceid") or headers.get("x-trace-id") or headers.get("x-request-id")


def _message(body: Any) -> str:
    if isinstance(body, Mapping):
        message = body.get("message") or body.get("error_description") or body.get("error")
        if isinstance(message, list):
            return "; ".join(str(m) for m in message)
        return str(message) if message else ""
    if isinstance(body, str):
        return body[:500]
    return ""
