"""The gate every API request passes: auth, Version header, rate limits, faults, call log.

It is a plain ASGI middleware so it can add the `X-RateLimit-*` headers to every answer,
delay an answer after the write happened (the "timeout" fault) or break the connection before
anything happens (the "reset" fault). `/_sandbox/*` (the admin API) and the public OAuth
endpoints skip auth, limits and faults.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import httpx2
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ghlsync.sandbox._errors import aip_error_body, error_body, uses_aip_errors
from ghlsync.sandbox._ratelimit import SlidingWindowLimiter
from ghlsync.sandbox._state import Principal, SandboxState
from ghlsync.sandbox._v3 import V3, V3Adapter, accepts_v3, v2_only_in_v3

_PUBLIC = ("/oauth/token", "/oauth/chooselocation", "/v2/oauth/chooselocation")
_ADMIN = ("/_sandbox", "/docs", "/openapi.json", "/redoc")
_COMPANY_ONLY = (
    "/oauth/locationToken",
    "/oauth/installedLocations",
    "/oauth/location-token",
    "/oauth/installed-locations",
)
_VERSIONS = {"/calendars": "2021-04-15", "/conversations": "2021-04-15"}
_DEFAULT_VERSION = "2021-07-28"
INVALID_TOKEN = "Invalid token: access token is invalid"  # noqa: S105 - a message
WRONG_AUTH_CLASS = (
    "This authClass type is not allowed to access this scope. "
    "Please reach out to the Platform team to get it added."
)


def required_version(path: str) -> str:
    """The v2 `Version` header value GHL's spec declares for a path."""
    for prefix, version in _VERSIONS.items():
        if path.startswith(prefix):
            return version
    return _DEFAULT_VERSION


def version_accepted(method: str, path: str, version: str | None) -> bool:
    """True when GHL takes `Version: version` on `method path` (its v2 value, or v3's)."""
    if version == V3:
        return accepts_v3(method, path)
    return version == required_version(path) and not v2_only_in_v3(path)


class Gate:
    """ASGI middleware holding the sandbox's request policy."""

    def __init__(self, app: ASGIApp, state: SandboxState, limiter: SlidingWindowLimiter) -> None:
        self.app = app
        self.state = state
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(_ADMIN):
            await self.app(scope, receive, send)
            return
        call = _Call(scope, self.state)

        async def send_recorded(message: Message) -> None:
            # Logged before the answer's last byte leaves: a client that reads the call log
            # (`/_sandbox/requests`) once it has its answer finds the call there.
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                call.record()
            await send(message)

        try:
            await self._handle(call, scope, receive, send_recorded)
        finally:
            call.record()  # no answer sent (a dropped connection, an error): logged now

    async def _handle(self, call: _Call, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        if path.startswith(_PUBLIC):
            await _guarded(self.app, call, scope, receive, send, {})
            return
        principal = self._authenticate(scope, path)
        if isinstance(principal, str):
            await call.answer(send, 401, error_body(401, principal), {})
            return
        call.location = principal.rate_key
        with self.state.lock:
            decision = self.limiter.take(
                principal.rate_key, self.state.limits_for(principal.rate_key)
            )
        headers = decision.headers
        if not decision.allowed:
            await call.answer(send, 429, error_body(429, "Too Many Requests"), headers)
            return
        version = _header(scope, b"version")
        if not version_accepted(call.method, path, version):
            wanted = V3 if v2_only_in_v3(path) else required_version(path)
            message = f"Version header was not found or is not supported (expected {wanted})"
            body = aip_error_body(400, message) if uses_aip_errors(path, 400) else None
            await call.answer(send, 400, body or error_body(400, message), headers)
            return
        scope.setdefault("state", {})["principal"] = principal
        app = V3Adapter(self.app) if version == V3 else self.app
        await self._with_faults(call, scope, receive, send, headers, app)

    def _authenticate(self, scope: Scope, path: str) -> Principal | str:
        """The token's principal, or the 401 message to answer with."""
        auth = _header(scope, b"authorization") or ""
        scheme, _, token = auth.partition(" ")
        with self.state.lock:
            principal = self.state.tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if principal is None:
            return INVALID_TOKEN
        if principal.expires_at is not None and principal.expires_at <= self.state.clock.now():
            return INVALID_TOKEN
        company_path = path.startswith(_COMPANY_ONLY)
        if company_path != (principal.user_type == "Company"):
            return WRONG_AUTH_CLASS
        return principal

    async def _with_faults(
        self,
        call: _Call,
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: dict[str, str],
        app: ASGIApp,
    ) -> None:
        fault = self._draw_fault(scope["path"])
        call.fault = fault
        if fault == "429":
            await call.answer(send, 429, error_body(429, "Too Many Requests"), headers)
        elif fault == "500":
            await call.answer(send, 500, error_body(500, "Internal server error"), headers)
        elif fault == "reset":
            await _reset_connection(send)
        elif fault == "timeout":
            buffered: list[Message] = []

            async def keep(message: Message) -> None:
                buffered.append(message)

            await _guarded(app, call, scope, receive, keep, headers)
            await asyncio.sleep(self.state.faults.timeout_seconds)
            for message in buffered:
                await send(message)
        else:
            await _guarded(app, call, scope, receive, send, headers)

    def _draw_fault(self, path: str) -> str | None:
        """Pick at most one fault for this request, by the configured probabilities."""
        if path.startswith("/oauth"):
            return None  # faults on token calls would break every client at once; see docs
        with self.state.lock:
            faults = self.state.faults
            draw = self.state.fault_rng.random()
        for name, chance in (
            ("429", faults.rate_429),
            ("500", faults.rate_500),
            ("timeout", faults.timeout),
            ("reset", faults.reset),
        ):
            if draw < chance:
                return name
            draw -= chance
        return None


async def _guarded(
    app: ASGIApp, call: _Call, scope: Scope, receive: Receive, send: Send, headers: dict[str, str]
) -> None:
    """Run the routes; a bug in them still answers GHL's JSON 500 with the rate headers.

    Every known bad input has its own 4xx (the schemathesis run checks no 5xx is left); this
    is the net under the ones not known yet, logged so they can be fixed.
    """
    try:
        await app(scope, receive, call.wrap(send, headers))
    except Exception:
        if call.status:  # the answer already started: nothing sane can follow
            raise
        _log.exception("sandbox route failed: %s %s", call.method, call.path)
        await call.answer(send, 500, error_body(500, "Internal server error"), headers)


_log = logging.getLogger(__name__)


class _Call:
    """What the call log records about one request."""

    def __init__(self, scope: Scope, state: SandboxState) -> None:
        self.state = state
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        self.query = scope.get("query_string", b"").decode("latin-1")
        self.status = 0
        self.location: str | None = None
        self.fault: str | None = None
        self.recorded = False
        self.time = state.clock.now()

    def wrap(self, send: Send, headers: dict[str, str]) -> Send:
        """A `send` that adds the rate-limit headers and notes the status."""
        extra = [(k.lower().encode(), v.encode()) for k, v in headers.items()]

        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.status = int(message["status"])
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        return wrapped

    async def answer(
        self, send: Send, status: int, body: dict[str, Any], headers: dict[str, str]
    ) -> None:
        """Send a whole JSON answer from the gate itself."""
        raw = json.dumps(body).encode()
        start: Message = {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(raw)).encode()),
            ],
        }
        await self.wrap(send, headers)(start)
        await send({"type": "http.response.body", "body": raw})

    def record(self) -> None:
        """Append to the call log and bump the counters (once per call)."""
        if self.recorded:
            return
        self.recorded = True
        entry = {
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "status": self.status,
            "location": self.location,
            "time": self.time,
            "fault": self.fault,
        }
        with self.state.lock:
            self.state.requests.append(entry)
            if self.location is not None:
                self.state.calls[self.location] += 1
                if self.status == 429:
                    self.state.throttled[self.location] += 1


class ConnectionResetFault(httpx2.RemoteProtocolError):
    """Raised inside a started response so the server drops the connection (a 'reset' fault).

    Over a socket, uvicorn closes the connection and the client sees a protocol error; over
    `httpx2.ASGITransport` the exception itself reaches the client, so it is an httpx2 one.
    """


async def _reset_connection(send: Send) -> None:
    """Start a response that promises a body, then fail: the client sees a broken answer."""
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"64")]}
    )
    raise ConnectionResetFault("sandbox fault: connection reset before the request was applied")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


class _DropResetFaults(logging.Filter):
    """Keeps uvicorn from logging a traceback for every injected connection reset."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, ConnectionResetFault)


def quiet_reset_faults() -> None:
    """Install the filter on uvicorn's error logger (once)."""
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _DropResetFaults) for f in logger.filters):
        logger.addFilter(_DropResetFaults())
