"""`KeepAliveTransport`: the GHL client's HTTP/1.1 connections, lean enough for every change.

httpx2's own transport (httpcore over anyio) spent ~0.5 ms of CPU per request on loopback
against a server that answers at once: more than the rest of a GHL call (building the
request, reading the answer, the rate-limit bookkeeping) put together (docs/benchmarks.md,
"Engine end to end"). This one does what a GHL call needs and no more: one request at a time
per connection, kept alive per origin, the request head and body written in one `write`, the
answer's head read with one `readuntil` and its body by `Content-Length`, chunks or until the
connection closes. It sits behind httpx2's `AsyncClient`, which still builds requests, follows
no redirects, decodes `Content-Encoding` and raises for status; only the wire is ours.

What a caller can tell from an error is kept exactly: nothing was sent (`ConnectError`,
`ConnectTimeout`, `PoolTimeout`: safe to send again) or the request may have reached GHL
(`WriteError`, `ReadError`, `RemoteProtocolError`, `WriteTimeout`, `ReadTimeout`: the outcome
is unknown), as `ghl._client` classifies them. Limits as httpx2's defaults: at most 100
connections, idle ones kept 5 s. TLS through `httpx2.create_ssl_context()` (the same trust
store). Where an HTTP(S) proxy is configured in the environment, `default_transport()` keeps
httpx2's transport, which speaks to proxies.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import urllib.request
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import httpx2

KEEPALIVE_EXPIRY_S = 5.0  # httpx2's default: an idle connection older than this is closed
MAX_CONNECTIONS = 100  # httpx2's defaults: requests at once, and idle connections kept
MAX_KEEPALIVE = 20
_HEAD_LIMIT = 64 * 1024  # an answer's status line and headers, at most
_NO_BODY = frozenset((204, 304))

Origin = tuple[str, str, int]  # scheme, host, port


@dataclass(slots=True, eq=False)
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    idle_since: float = field(default_factory=time.monotonic)

    def usable(self, now: float) -> bool:
        """Not closed by the server meanwhile, and not idle long enough for it to do so."""
        return (
            now - self.idle_since < KEEPALIVE_EXPIRY_S
            and not self.reader.at_eof()
            and not self.writer.is_closing()
        )

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


class KeepAliveTransport(httpx2.AsyncBaseTransport):
    """HTTP/1.1 keep-alive connections per origin (see the module docstring)."""

    def __init__(self, *, max_connections: int = MAX_CONNECTIONS) -> None:
        self._idle: dict[Origin, deque[_Connection]] = {}
        self._slots = asyncio.Semaphore(max_connections)
        self._ssl: Any = None
        self._closed = False

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        timeouts = request.extensions.get("timeout", {})
        url = request.url
        origin = (url.scheme, url.host, url.port or (443 if url.scheme == "https" else 80))
        body = await request.aread()
        message = _serialize(request, body)
        try:
            async with asyncio.timeout(timeouts.get("pool")):
                await self._slots.acquire()
        except TimeoutError as exc:
            raise httpx2.PoolTimeout("no connection free in time", request=request) from exc
        try:
            conn = await self._connection(origin, request, timeouts.get("connect"))
            done = False
            try:
                status, headers, content, keep = await self._exchange(
                    conn, message, request, timeouts
                )
                done = True
            finally:
                if not done:
                    conn.close()  # cancelled or failed mid-exchange: its state is unknown
        finally:
            self._slots.release()
        pool = self._idle.setdefault(origin, deque())
        if keep and not self._closed and len(pool) < MAX_KEEPALIVE:
            conn.idle_since = time.monotonic()
            pool.append(conn)
        else:
            conn.close()
        return httpx2.Response(
            status,
            headers=headers,
            stream=httpx2.ByteStream(content),
            request=request,
            extensions={"http_version": b"HTTP/1.1"},
        )

    async def aclose(self) -> None:
        self._closed = True
        for pool in self._idle.values():
            while pool:
                pool.pop().close()

    async def _connection(
        self, origin: Origin, request: httpx2.Request, connect_s: float | None
    ) -> _Connection:
        pool = self._idle.get(origin)
        now = time.monotonic()
        while pool:
            conn = pool.pop()  # the most recently used: the likeliest to be alive
            if conn.usable(now):
                return conn
            conn.close()
        scheme, host, port = origin
        ssl = self._ssl_context() if scheme == "https" else None
        try:
            async with asyncio.timeout(connect_s):
                reader, writer = await asyncio.open_connection(
                    host, port, ssl=ssl, server_hostname=host if ssl else None, limit=_HEAD_LIMIT
                )
        except TimeoutError as exc:
            raise httpx2.ConnectTimeout(f"connecting to {host}:{port}", request=request) from exc
        except (OSError, ValueError) as exc:  # refused, DNS, TLS handshake
            raise httpx2.ConnectError(f"{host}:{port}: {exc}", request=request) from exc
        return _Connection(reader, writer)

    def _ssl_context(self) -> Any:
        if self._ssl is None:
            self._ssl = httpx2.create_ssl_context()
        return self._ssl

    async def _exchange(
        self, conn: _Connection, message: bytes, request: httpx2.Request, timeouts: dict[str, Any]
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes, bool]:
        try:
            async with asyncio.timeout(timeouts.get("write")):
                conn.writer.write(message)
                await conn.writer.drain()
        except TimeoutError as exc:
            raise httpx2.WriteTimeout("sending the request", request=request) from exc
        except OSError as exc:
            raise httpx2.WriteError(str(exc) or "the connection broke", request=request) from exc
        try:
            async with asyncio.timeout(timeouts.get("read")):
                return await _read_answer(conn.reader, request)
        except TimeoutError as exc:
            raise httpx2.ReadTimeout("waiting for the answer", request=request) from exc
        except asyncio.IncompleteReadError as exc:
            if not exc.partial and not isinstance(exc, _BodyCut):
                raise httpx2.RemoteProtocolError(
                    "Server disconnected without sending a response.", request=request
                ) from exc
            raise httpx2.ReadError("the answer was cut short", request=request) from exc
        except asyncio.LimitOverrunError as exc:
            raise httpx2.RemoteProtocolError("answer head too large", request=request) from exc
        except OSError as exc:
            raise httpx2.ReadError(str(exc) or "the connection broke", request=request) from exc


class _BodyCut(asyncio.IncompleteReadError):
    """The connection closed inside the body (the head had arrived)."""


def _serialize(request: httpx2.Request, body: bytes) -> bytes:
    """The request as bytes: request line, headers (httpx2 already set Host and the length),
    body; a chunked body (no length known) goes as one chunk."""
    url = request.url
    lines = [b"%s %s HTTP/1.1" % (request.method.encode(), url.raw_path)]
    chunked = False
    for name, value in request.headers.raw:
        if name.lower() == b"transfer-encoding" and value.lower() == b"chunked":
            chunked = True
        lines.append(name + b": " + value)
    head = b"\r\n".join(lines) + b"\r\n\r\n"
    if chunked:
        size = b"%x\r\n" % len(body)
        return head + (size + body + b"\r\n" if body else b"") + b"0\r\n\r\n"
    return head + body


async def _read_answer(
    reader: asyncio.StreamReader, request: httpx2.Request
) -> tuple[int, list[tuple[bytes, bytes]], bytes, bool]:
    """(status, headers, body, connection reusable), skipping interim 1xx answers."""
    while True:
        head = await reader.readuntil(b"\r\n\r\n")
        status, headers, version = _parse_head(head, request)
        if not 100 <= status < 200:
            break
    length: int | None = None
    chunked = False
    close = version == b"HTTP/1.0"
    for name, value in headers:
        lowered = name.lower()
        if lowered == b"content-length":
            try:
                length = int(value)
            except ValueError as exc:
                raise httpx2.RemoteProtocolError("bad Content-Length", request=request) from exc
        elif lowered == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif lowered == b"connection":
            tokens = value.lower()
            close = b"close" in tokens or (close and b"keep-alive" not in tokens)
    if request.method == "HEAD" or status in _NO_BODY:
        return status, headers, b"", not close
    try:
        if chunked:
            body = await _read_chunks(reader)
        elif length is not None:
            body = await reader.readexactly(length)
        else:  # no length: the body runs until the server closes
            return status, headers, await reader.read(), False
    except asyncio.IncompleteReadError as exc:
        raise _BodyCut(exc.partial, exc.expected) from exc
    return status, headers, body, not close


async def _read_chunks(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    while True:
        line = await reader.readuntil(b"\r\n")
        size = int(line.split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":
                pass  # trailers: none GHL sends that anyone reads
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)  # the chunk's CRLF


def _parse_head(
    head: bytes, request: httpx2.Request
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    lines = head[:-4].split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise httpx2.RemoteProtocolError(
            f"not an HTTP/1.1 answer: {lines[0][:80]!r}", request=request
        )
    headers = []
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not name or name != name.strip():
            raise httpx2.RemoteProtocolError("malformed header line", request=request)
        headers.append((name, value.strip()))
    return int(parts[1]), headers, parts[0]


def proxy_configured() -> bool:
    """True when the environment names an HTTP(S) proxy (httpx2 honours those: keep it)."""
    proxies = urllib.request.getproxies()
    return any(scheme in proxies for scheme in ("http", "https", "all"))


def default_transport() -> httpx2.AsyncBaseTransport | None:
    """The transport a `GHLClient` without one uses: `KeepAliveTransport`, or None (httpx2's
    own) when a proxy is configured."""
    return None if proxy_configured() else KeepAliveTransport()
