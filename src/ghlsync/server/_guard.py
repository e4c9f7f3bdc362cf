"""Connection limits for `ghlsync serve`: slow or idle clients cannot hold the server.

uvicorn bounds neither how long a client may take to send its headers nor how many connections
may be open: a peer that sends half a request line and then nothing holds a connection (and a
file descriptor) forever, and enough of them exhaust the process's descriptors, after which
nothing, `/healthz` included, is answered. `guarded_protocol` adds the missing bounds to
uvicorn's h11 protocol:

- headers: a connection must deliver its request line and headers within `header_timeout`
  seconds of connecting (or of its first byte of a kept-alive request), else it is closed;
- body: once the headers are in, the body must arrive within `body_timeout` (the receiver
  answers `408` a little earlier itself, see `_limits.read_limited`; this is the backstop for a
  body nobody reads, e.g. one sent to an unknown path);
- connections: past `max_connections` open at once, a new connection is answered
  `503 overloaded` and closed at once, so descriptors never run out;
- malformed requests are answered with the JSON error shape instead of uvicorn's plain text.

Each of these is logged once per interval, with a count, not once per connection: under a
flood, a line per connection would fill the disk.
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, ClassVar, cast

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from ghlsync.mapping._config import ServerSettings

__all__ = [
    "ConnectionLimits",
    "ThrottledLog",
    "fold_uvicorn_warnings",
    "guarded_protocol",
    "quiet_accept_errors",
    "uvicorn_settings",
]

_log = logging.getLogger("ghlsync.server")
LOG_INTERVAL_SECONDS = 60.0
MAX_HEADER_BYTES = 16 * 1024  # request line and headers; more is answered 400
FD_RESERVE = 64  # descriptors kept for the store, log files and the worker's GHL client
DEFAULT_BACKLOG = 128
LINGER_SECONDS = 2.0  # reading the rest of a refused body before closing (`_CoalescedWrites`)
BODY_BACKSTOP_GRACE = 2.0  # at most; the receiver's own 408 comes first when it reads the body


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """How long a client may take, and how many may be connected at once."""

    header_timeout: float = 10.0
    body_timeout: float = 30.0
    keep_alive: float = 5.0
    max_connections: int = 1000
    # Also how many connections asyncio accepts in one go before any is counted: each holds a
    # descriptor, so the open-file limit must fit max_connections + backlog + FD_RESERVE.
    backlog: int = DEFAULT_BACKLOG

    @classmethod
    def from_settings(cls, settings: ServerSettings) -> ConnectionLimits:
        """The limits of `server:` in ghlsync.yaml."""
        return cls(
            header_timeout=settings.header_timeout,
            body_timeout=settings.body_timeout,
            keep_alive=settings.keep_alive,
            max_connections=settings.max_connections,
        )

    def within_fd_limit(self) -> ConnectionLimits:
        """These limits lowered to fit the open-file limit (`ulimit -n`): descriptors run out
        neither for admitted connections nor for a burst being accepted."""
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        need = self.max_connections + self.backlog + FD_RESERVE
        if soft == resource.RLIM_INFINITY or need <= soft:
            return self
        backlog = min(self.backlog, max(16, soft // 8))
        fitted = max(1, soft - FD_RESERVE - backlog)
        _log.warning(
            "server.max_connections %d does not fit the open-file limit %d; using %d "
            "(raise the limit, e.g. LimitNOFILE= in the systemd unit, to allow more)",
            self.max_connections,
            soft,
            fitted,
        )
        return replace(self, max_connections=fitted, backlog=backlog)


class ThrottledLog:
    """A warning per kind of event at most once per `interval`, with how many were folded in."""

    def __init__(
        self,
        logger: logging.Logger = _log,
        *,
        interval: float = LOG_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._interval = interval
        self._clock = clock
        self._last: dict[str, float] = {}
        self._folded: dict[str, int] = {}

    def warn(self, kind: str, message: str) -> None:
        """Log `message` now, or count it if a `kind` line was logged within the interval."""
        now = self._clock()
        last = self._last.get(kind)
        if last is not None and now - last < self._interval:
            self._folded[kind] = self._folded.get(kind, 0) + 1
            return
        folded = self._folded.pop(kind, 0)
        self._last[kind] = now
        if folded:
            message += f" ({folded} more since the last such line)"
        self._logger.warning("%s", message)


def _raw_json(status: int, reason: str, code: str, message: str) -> bytes:
    """A complete HTTP/1.1 answer that closes the connection, written before any request."""
    body = json.dumps({"error": code, "message": message}, separators=(",", ":")).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


_OVERLOADED = _raw_json(
    503, "Service Unavailable", "overloaded", "too many open connections; retry shortly"
)


class _GuardedH11(H11Protocol):
    """uvicorn's h11 protocol with header and body deadlines and a connection cap."""

    limits: ClassVar[ConnectionLimits]
    throttle: ClassVar[ThrottledLog]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._waiting_for: type[h11._util.Sentinel] | None = None
        self._refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self.limits.max_connections:
            self._refuse(transport)
            return
        super().connection_made(transport)
        writes = _CoalescedWrites(transport, self.loop, self._body_unread)
        self.transport = cast(asyncio.Transport, writes)
        self._expect(h11.IDLE, self.limits.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        if not self._refused:
            super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        super().data_received(data)
        self._watch()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._watch()

    def _body_unread(self) -> bool:
        """The client is still sending a body we answered without reading (408, 413)."""
        return self.conn.their_state is h11.SEND_BODY

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a request it cannot parse, in our JSON error shape."""
        self.throttle.warn("malformed", "answered 400 to requests that are not valid HTTP")
        message = "the request is not valid HTTP/1.1 (or its headers are over 16 KiB)"
        self.transport.write(_raw_json(400, "Bad Request", "bad_request", message))
        self.transport.close()

    def _refuse(self, transport: asyncio.Transport) -> None:
        self._refused = True
        self.transport = transport
        limit = self.limits.max_connections
        self.throttle.warn(
            "connections",
            f"{limit} connections are open (server.max_connections); new ones "
            "are answered 503 and closed",
        )
        transport.write(_OVERLOADED)
        transport.close()

    def _watch(self) -> None:
        """Arm the deadline of what the connection now waits for from the client."""
        state = self.conn.their_state
        if state is h11.IDLE and self.conn.trailing_data[0]:
            self._expect(h11.IDLE, self.limits.header_timeout)  # a request head has begun
        elif state is h11.SEND_BODY:
            grace = min(BODY_BACKSTOP_GRACE, self.limits.body_timeout)
            self._expect(h11.SEND_BODY, self.limits.body_timeout + grace)
        elif state is not h11.IDLE:
            self._cancel()

    def _expect(self, state: type[h11._util.Sentinel], seconds: float) -> None:
        if self._waiting_for is state and self._deadline is not None:
            return  # the deadline runs from the start of the wait, not from the last byte
        self._cancel()
        self._waiting_for = state
        self._deadline = self.loop.call_later(seconds, self._expire, state)

    def _cancel(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline, self._waiting_for = None, None

    def _expire(self, state: type[h11._util.Sentinel]) -> None:
        self._deadline, self._waiting_for = None, None
        if self.conn.their_state is not state or self.transport.is_closing():
            return
        if state is h11.IDLE:
            seconds, what = self.limits.header_timeout, "their headers"
        else:
            seconds, what = self.limits.body_timeout, "their body"
        self.throttle.warn(
            f"slow-{what}", f"closed connections that did not send {what} within {seconds:g} s"
        )
        self.transport.close()


class _CoalescedWrites:
    """The connection's transport, with the writes of one turn of the loop sent as one.

    uvicorn writes a response's head and body separately, and each `send()` on a loopback or
    LAN socket costs as much CPU as parsing the request (it wakes the peer). Writes made in
    the same turn of the event loop are joined and sent at the end of it: the same bytes in
    the same order, one system call per response. Closing sends what is pending first.

    Closing while the client is still sending a body we refused unread (408, 413) lingers:
    our side is shut down (FIN after the answer) and the rest of the body read and dropped
    for up to `LINGER_SECONDS`. Closing at once would make the kernel answer the body's late
    bytes with a reset, which discards our answer from the client's buffer before it reads
    it (it saw "connection reset" instead of the 413).
    """

    __slots__ = ("_linger", "_loop", "_pending", "_transport")

    def __init__(
        self,
        transport: asyncio.Transport,
        loop: asyncio.AbstractEventLoop,
        linger: Callable[[], bool] = lambda: False,
    ) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []
        self._linger = linger

    def write(self, data: bytes) -> None:
        if not data:
            return
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(data)

    def close(self) -> None:
        self._flush()
        transport = self._transport
        if transport.is_closing() or not self._linger() or not transport.can_write_eof():
            transport.close()
            return
        transport.write_eof()
        self._linger = lambda: False  # once
        self._loop.call_later(LINGER_SECONDS, transport.close)

    def _flush(self) -> None:
        if self._pending:
            data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
            self._pending = []
            if not self._transport.is_closing():
                self._transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def guarded_protocol(
    limits: ConnectionLimits, throttle: ThrottledLog | None = None
) -> type[H11Protocol]:
    """An h11 protocol class for uvicorn (`http=`) that enforces `limits`."""
    attributes = {"limits": limits, "throttle": throttle or ThrottledLog()}
    return type("GuardedH11Protocol", (_GuardedH11,), attributes)


def uvicorn_settings(
    limits: ConnectionLimits, throttle: ThrottledLog | None = None
) -> dict[str, Any]:
    """Keyword arguments for `uvicorn.Config` that apply `limits`."""
    return {
        "http": guarded_protocol(limits, throttle),
        "timeout_keep_alive": limits.keep_alive,
        "h11_max_incomplete_event_size": MAX_HEADER_BYTES,
        "backlog": limits.backlog,
    }


_ACCEPT_EXHAUSTED = "socket.accept() out of system resource"
_UVICORN_INVALID = "Invalid HTTP request received."


class _FoldInvalidRequests(logging.Filter):
    """Drops uvicorn's line per malformed request; `send_400_response` logs them throttled."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != _UVICORN_INVALID


def fold_uvicorn_warnings() -> None:
    """Install the filter on uvicorn's error logger (once per process)."""
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _FoldInvalidRequests) for f in logger.filters):
        logger.addFilter(_FoldInvalidRequests())


def quiet_accept_errors(loop: asyncio.AbstractEventLoop, throttle: ThrottledLog) -> None:
    """Log "cannot accept: out of file descriptors" once per interval, without a traceback.

    asyncio logs each failed accept with a traceback (and retries a second later); under a
    flood that is thousands of lines a minute.
    """
    previous = loop.get_exception_handler()

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if context.get("message") == _ACCEPT_EXHAUSTED:
            error = context.get("exception")
            throttle.warn(
                "accept",
                f"cannot accept connections: {error or 'out of resources'}; lower "
                "server.max_connections or raise the open-file limit",
            )
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)
