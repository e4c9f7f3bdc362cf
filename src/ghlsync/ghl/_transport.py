"""`KeepAliveTransport`: the GHL client's HTTP/1.1 connections, lean enough for every change.

httpx2's own transport (httpcore over anyio) spent ~0.5 ms of CPU per request on loopback
against a server that answers at once: more than the rest of a GHL call (building the
request, reading the answer, the rate-limit bookkeeping) put together (docs/benchmarks.md,
"Engine end to end"). This one does what a GHL call needs and no more: one request at a time
per connection, kept alive per origin, the request head and body written in one `write`, the
answer parsed by the connection's protocol as its bytes arrive (head, then the body by
`Content-Length`, chunks or until the connection closes) and handed over whole through one
future, its read timeout one timer. It sits behind httpx2's `AsyncClient`, which still builds
requests, follows no redirects, decodes `Content-Encoding` and raises for status; only the
wire is ours. The GHL client sends its plain calls as bytes (`exchange`, `ghl._lane`), the
rest as httpx2 requests. A connection holding bytes nobody asked for is not used again.

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
import time
import urllib.request
from collections import deque
from collections.abc import Mapping
from typing import Any, NamedTuple

import httpx2

KEEPALIVE_EXPIRY_S = 5.0  # httpx2's default: an idle connection older than this is closed
MAX_CONNECTIONS = 100  # httpx2's defaults: requests at once, and idle connections kept
MAX_KEEPALIVE = 20
_HEAD_LIMIT = 64 * 1024  # an answer's status line and headers, at most
_NO_BODY = frozenset((204, 304))

Origin = tuple[str, str, int]  # scheme, host, port


class Answer(NamedTuple):
    """An answer as read off the wire."""

    status: int
    headers: list[tuple[bytes, bytes]]  # as sent
    body: bytes
    reusable: bool  # the connection can carry another request
    ascii: bool  # the head is all ASCII: the encoding httpx2 would find for its headers


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: it writes a request and parses the answer as its bytes
    arrive (`data_received`), then wakes the one task waiting for it with one future.

    A protocol rather than asyncio's streams: a stream reader wakes its reader per
    `readuntil`/`readexactly`, and each wait needed its own `asyncio.timeout` (a timer, the
    task's cancel bookkeeping); here an answer is one future and one timer.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.idle_since = time.monotonic()
        self._buffer = bytearray()
        self._lost = False
        self._paused = False
        self._writable: asyncio.Future[None] | None = None  # while paused, a writer waits
        self._request: httpx2.Request | None = None  # for errors; None from `exchange`
        self._method = ""  # of the request whose answer is awaited
        self._answer: asyncio.Future[Answer] | None = None
        self._head: tuple[int, list[tuple[bytes, bytes]], bool, bool] | None = None  # see `_start`
        self._length: int | None = None  # the body's length; None with `_chunked`: until close
        self._chunked = False
        self._pos = 0  # chunked: where the next chunk's size line starts in `_buffer`
        self._parts: list[bytes] = []

    def usable(self, now: float) -> bool:
        """Not closed by the server meanwhile, and not idle long enough for it to do so."""
        return (
            now - self.idle_since < KEEPALIVE_EXPIRY_S
            and not self._lost
            and not self._buffer  # bytes nobody asked for: the state is unknown
            and self.transport is not None
            and not self.transport.is_closing()
        )

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    async def exchange(
        self,
        message: bytes,
        method: str,
        request: httpx2.Request | None,
        timeouts: Mapping[str, Any],
    ) -> Answer:
        """Write `message` and wait for its whole answer (errors as the module docstring says)."""
        if self._lost or self.transport is None:
            raise httpx2.WriteError("the connection broke", request=request)
        self._request = request
        self._method = method
        self._head = None
        answer: asyncio.Future[Answer] = self.loop.create_future()
        self._answer = answer
        try:
            self.transport.write(message)
            if self._paused:
                await self._drain(request, timeouts.get("write"))
            read_s = timeouts.get("read")
            timer = None if read_s is None else self.loop.call_later(read_s, self._read_timed_out)
            try:
                return await answer
            finally:
                if timer is not None:
                    timer.cancel()
        finally:
            self._answer = self._request = None
            if answer.done() and not answer.cancelled():
                answer.exception()  # seen: a read error after the write error raised is no news

    async def _drain(self, request: httpx2.Request | None, write_s: float | None) -> None:
        """Wait until the transport takes more (it holds over its high-water mark)."""
        self._writable = self.loop.create_future()
        try:
            async with asyncio.timeout(write_s):
                await self._writable
        except TimeoutError as exc:
            raise httpx2.WriteTimeout("sending the request", request=request) from exc
        finally:
            self._writable = None

    def _read_timed_out(self) -> None:
        self._fail(httpx2.ReadTimeout("waiting for the answer", request=self._request))

    def _fail(self, exc: Exception) -> None:
        if self._answer is not None and not self._answer.done():
            self._answer.set_exception(exc)

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if self._answer is None or self._answer.done():
            return
        try:
            self._parse()
        except httpx2.RemoteProtocolError as exc:
            self._fail(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        if self._writable is not None and not self._writable.done():
            self._writable.set_exception(
                httpx2.WriteError(str(exc or "") or "the connection broke", request=self._request)
            )
        if self._answer is None or self._answer.done():
            return
        if exc is not None:
            self._fail(httpx2.ReadError(str(exc) or "the connection broke", request=self._request))
        elif self._head is not None and self._length is None and not self._chunked:
            status, headers, _keep, ascii = self._head  # no length: the body ran until this close
            self._answer.set_result(Answer(status, headers, bytes(self._buffer), False, ascii))
        elif self._head is None and not self._buffer:
            message = "Server disconnected without sending a response."
            self._fail(httpx2.RemoteProtocolError(message, request=self._request))
        else:
            self._fail(httpx2.ReadError("the answer was cut short", request=self._request))

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    # the answer, from `_buffer`

    def _parse(self) -> None:
        """Take what `_buffer` holds of the answer; complete it once it is whole."""
        assert self._answer is not None
        while self._head is None:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > _HEAD_LIMIT:
                    raise httpx2.RemoteProtocolError("answer head too large", request=self._request)
                return
            head = bytes(self._buffer[: end + 4])
            del self._buffer[: end + 4]
            self._start(*_parse_head(head, self._request), head.isascii())
        status, headers, keep, ascii = self._head
        if self._chunked:
            body = self._chunks()
            if body is None:
                return
        elif self._length is None:
            return  # until the close: `connection_lost`
        elif len(self._buffer) < self._length:
            return
        else:
            body = bytes(self._buffer[: self._length])
            del self._buffer[: self._length]
        self._answer.set_result(Answer(status, headers, body, keep and not self._buffer, ascii))

    def _start(
        self, status: int, headers: list[tuple[bytes, bytes]], version: bytes, ascii: bool
    ) -> None:
        """A head has arrived: how its body is framed (an interim 1xx one: wait for the next).
        `_head` is then (status, headers, the connection reusable after the body, `ascii`)."""
        if 100 <= status < 200:
            return
        length: int | None = None
        chunked = False
        close = version == b"HTTP/1.0"
        for name, value in headers:
            lowered = name.lower()
            if lowered == b"content-length":
                try:
                    length = int(value)
                except ValueError as exc:
                    message = "bad Content-Length"
                    raise httpx2.RemoteProtocolError(message, request=self._request) from exc
            elif lowered == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif lowered == b"connection":
                tokens = value.lower()
                close = b"close" in tokens or (close and b"keep-alive" not in tokens)
        if self._method == "HEAD" or status in _NO_BODY:
            length, chunked = 0, False
        self._length, self._chunked = length, chunked
        self._pos, self._parts = 0, []
        self._head = (status, headers, not close and (length is not None or chunked), ascii)

    def _chunks(self) -> bytes | None:
        """The chunked body once its last chunk (and trailers) arrived, else None."""
        buffer = self._buffer
        while True:
            line_end = buffer.find(b"\r\n", self._pos)
            if line_end < 0:
                return None
            try:
                size = int(buffer[self._pos : line_end].split(b";", 1)[0].strip() or b"0", 16)
            except ValueError as exc:
                raise httpx2.RemoteProtocolError("bad chunk size", request=self._request) from exc
            if size == 0:
                end = buffer.find(b"\r\n\r\n", line_end)  # trailers: none anyone reads
                if end < 0:
                    return None
                del buffer[: end + 4]
                return b"".join(self._parts)
            start = line_end + 2
            if len(buffer) < start + size + 2:
                return None
            self._parts.append(bytes(buffer[start : start + size]))
            self._pos = start + size + 2  # past the chunk's CRLF


class KeepAliveTransport(httpx2.AsyncBaseTransport):
    """HTTP/1.1 keep-alive connections per origin (see the module docstring)."""

    def __init__(self, *, max_connections: int = MAX_CONNECTIONS) -> None:
        self._idle: dict[Origin, deque[_Connection]] = {}
        self._slots = asyncio.Semaphore(max_connections)
        self._ssl: Any = None
        self._closed = False

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        timeouts = request.extensions.get("timeout", {})
        body = await request.aread()
        message = _serialize(request, body)
        origin = origin_of(request.url)
        answer = await self.exchange(origin, message, request.method, timeouts, request)
        return response_of(answer, request)

    async def exchange(
        self,
        origin: Origin,
        message: bytes,
        method: str,
        timeouts: Mapping[str, Any],
        request: httpx2.Request | None = None,
    ) -> Answer:
        """Send `message` (a whole HTTP/1.1 request of `method`) to `origin` and read its
        answer: `handle_async_request` without the httpx2 objects on either side, for a caller
        that writes the request's bytes itself (`ghl._lane`). `request`, when there is one, is
        named by the errors."""
        await self._acquire(request, timeouts.get("pool"))
        try:
            conn = await self._connection(origin, request, timeouts.get("connect"))
            done = False
            try:
                answer = await conn.exchange(message, method, request, timeouts)
                done = True
            finally:
                if not done:
                    conn.close()  # cancelled or failed mid-exchange: its state is unknown
        finally:
            self._slots.release()
        pool = self._idle.setdefault(origin, deque())
        if answer.reusable and not self._closed and len(pool) < MAX_KEEPALIVE:
            conn.idle_since = time.monotonic()
            pool.append(conn)
        else:
            conn.close()
        return answer

    async def aclose(self) -> None:
        self._closed = True
        for pool in self._idle.values():
            while pool:
                pool.pop().close()

    async def _acquire(self, request: httpx2.Request | None, pool_s: float | None) -> None:
        """A request slot; the pool timeout runs only when none is free now."""
        if not self._slots.locked():
            await self._slots.acquire()  # free: returns without waiting
            return
        try:
            async with asyncio.timeout(pool_s):
                await self._slots.acquire()
        except TimeoutError as exc:
            raise httpx2.PoolTimeout("no connection free in time", request=request) from exc

    async def _connection(
        self, origin: Origin, request: httpx2.Request | None, connect_s: float | None
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
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(connect_s):
                _transport, conn = await loop.create_connection(
                    lambda: _Connection(loop),
                    host,
                    port,
                    ssl=ssl,
                    server_hostname=host if ssl else None,
                )
        except TimeoutError as exc:
            raise httpx2.ConnectTimeout(f"connecting to {host}:{port}", request=request) from exc
        except (OSError, ValueError) as exc:  # refused, DNS, TLS handshake
            raise httpx2.ConnectError(f"{host}:{port}: {exc}", request=request) from exc
        return conn

    def _ssl_context(self) -> Any:
        if self._ssl is None:
            self._ssl = httpx2.create_ssl_context()
        return self._ssl


def origin_of(url: httpx2.URL) -> Origin:
    """Where a request to `url` goes: scheme, host, port (the scheme's default if none)."""
    scheme = url.scheme
    return scheme, url.host, url.port or (443 if scheme == "https" else 80)


def response_of(answer: Answer, request: httpx2.Request | None) -> httpx2.Response:
    """The answer as an `httpx2.Response`, read: its body is whole in memory already, and
    httpx2's synchronous read (which decodes `Content-Encoding`) skips the async generators
    of the read the client would do (a response that arrives closed is one httpx2 expects,
    as from `MockTransport`). An all-ASCII head tells httpx2 its headers' encoding, which it
    would otherwise find by decoding every header."""
    response = httpx2.Response(
        answer.status,
        headers=answer.headers,
        stream=httpx2.ByteStream(answer.body),
        request=request,
        extensions={"http_version": b"HTTP/1.1"},
    )
    if answer.ascii:
        response.headers.encoding = "ascii"
    response.read()
    return response


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


def _parse_head(
    head: bytes, request: httpx2.Request | None
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
