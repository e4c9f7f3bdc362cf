"""Connection limits for `ghlsync serve`: slow or idle clients cannot hold the server.

uvicorn bounds neither how long a client may take to send its headers nor how many connections
may be open: a peer that sends half a request line and then nothing holds a connection (and a
file descriptor) forever, and enough of them exhaust the process's descriptors, after which
nothing, `/healthz` included, is answered. `guarded_protocol` adds the missing bounds to
uvicorn's HTTP protocol, over httptools when it is installed (`http_parser`; less CPU per
request) and over h11 otherwise, with the same behaviour (`_conn._Guarded`):

- headers: a connection must deliver its request line and headers within `header_timeout`
  seconds of connecting (or of its first byte of a kept-alive request), else it is closed;
- body: once the headers are in, the body must arrive within `body_timeout` (the receiver
  answers `408` a little earlier itself, see `_limits.read_limited`; this is the backstop for a
  body nobody reads, e.g. one sent to an unknown path);
- connections: past `max_connections` open at once, a new connection is answered
  `503 overloaded` and closed at once, so descriptors never run out;
- head size: a request line and headers over `MAX_HEADER_BYTES` (16 KiB) are answered `400`;
- malformed requests are answered with the JSON error shape instead of uvicorn's plain text.

Each of these is logged once per interval, with a count, not once per connection: under a
flood, a line per connection would fill the disk.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal

from ghlsync.mapping._config import ServerSettings
from ghlsync.server.guard._conn import MAX_HEADER_BYTES
from ghlsync.server.guard._h11 import _GuardedH11

__all__ = [
    "ConnectionLimits",
    "HttpParser",
    "ThrottledLog",
    "fold_uvicorn_warnings",
    "guarded_protocol",
    "http_parser",
    "quiet_accept_errors",
    "uvicorn_settings",
]

_log = logging.getLogger("ghlsync.server")
LOG_INTERVAL_SECONDS = 60.0
FD_RESERVE = 64  # descriptors kept for the store, log files and the worker's GHL client
DEFAULT_BACKLOG = 128


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


HttpParser = Literal["httptools", "h11"]


def http_parser() -> HttpParser:
    """The parser `ghlsync serve` uses: httptools (C, less CPU per request) when it can be
    imported, which it can with ghlsync's dependencies; else h11, which uvicorn always has."""
    try:
        import httptools  # noqa: F401
    except ImportError:
        return "h11"
    return "httptools"


def guarded_protocol(
    limits: ConnectionLimits,
    throttle: ThrottledLog | None = None,
    *,
    parser: HttpParser | None = None,
) -> type[asyncio.Protocol]:
    """A protocol class for uvicorn (`http=`) that enforces `limits`, over `parser`
    (default: `http_parser()`)."""
    attributes = {"limits": limits, "throttle": throttle or ThrottledLog()}
    if (parser or http_parser()) == "httptools":
        from ghlsync.server.guard._httptools import _GuardedHttpTools

        return type("GuardedHttpToolsProtocol", (_GuardedHttpTools,), attributes)
    return type("GuardedH11Protocol", (_GuardedH11,), attributes)


def uvicorn_settings(
    limits: ConnectionLimits,
    throttle: ThrottledLog | None = None,
    *,
    parser: HttpParser | None = None,
) -> dict[str, Any]:
    """Keyword arguments for `uvicorn.Config` that apply `limits` (over `parser`, default
    `http_parser()`)."""
    return {
        "http": guarded_protocol(limits, throttle, parser=parser),
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
