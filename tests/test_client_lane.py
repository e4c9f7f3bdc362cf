"""The client's lean lane (`ghl._lane`): on `KeepAliveTransport`, a plain call is written as
bytes and a plain success read without httpx2's objects. A loopback server that records what
it receives and answers as a test chooses: every call sends the same bytes, and every answer
comes back the same (value, error, what the limiter learns, `last_rate`), as through httpx2's
objects on the same transport."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import httpx2
import pytest

from ghlsync.ghl import GHLClient, StaticTokens
from ghlsync.ghl._errors import GHLError
from ghlsync.ghl._transport import KeepAliveTransport

_TOKEN = "pit-0123456789abcdef"


def answer(body: bytes, *extra: bytes, status: bytes = b"200 OK") -> bytes:
    head = [b"HTTP/1.1 " + status, b"Content-Length: %d" % len(body), *extra]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


_REPLIES = [
    answer(b'{"a": 1, "b": ["x"]}', b"X-RateLimit-Remaining: 9", b"X-RateLimit-Max: 10"),
    answer(b'{"n": 2}', b"Set-Cookie: a=1", b"set-cookie: b=2", b"X-Ratelimit-Remaining: 5"),
    answer(b'{"id": "c1"}', status=b"201 Created"),
    b"HTTP/1.1 204 No Content\r\n\r\n",
    answer(b""),
    answer("café".encode("latin-1"), b"Content-Type: text/plain; charset=latin-1"),
    answer(b"not json"),
    answer(gzip.compress(b'{"packed": true}'), b"Content-Encoding: gzip"),
    answer(b'{"k": 1}', "X-Name: café".encode()),
    answer(b'{"message": "nope"}', status=b"404 Not Found"),
    answer(b'{"message": "bad", "meta": {"contactId": "p1"}}', status=b"400 Bad Request"),
    answer(b'{"message": "who"}', status=b"401 Unauthorized"),
]

# (method, path, params, json)
_CALLS: list[tuple[str, str, dict[str, Any] | None, Any]] = [
    ("POST", "/custom/thing", None, {"email": "a@example.com", "name": "Zoë ✓ \u2028"}),
    ("GET", "/custom/thing/x1-_~.y", None, None),
    ("DELETE", "/custom/thing/x1", None, None),
    ("PUT", "/custom/thing/x1", None, [1, None, True, {"k": []}]),
    ("POST", "/custom/thing", None, None),
    ("GET", "/custom/thing", {"a": 1, "b": " z"}, None),
    ("GET", "/custom/th%20ing/é", None, None),
]


class Wrapped(httpx2.AsyncBaseTransport):
    """`KeepAliveTransport` behind httpx2's objects (the client cannot tell it is ours)."""

    def __init__(self) -> None:
        self.inner = KeepAliveTransport()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


class Counting(KeepAliveTransport):
    """Our transport, counting the requests that came as httpx2 objects."""

    def __init__(self) -> None:
        super().__init__()
        self.as_objects = 0

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        self.as_objects += 1
        return await super().handle_async_request(request)


class Noting:
    """A limiter that lets every call go and notes what it learns."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, int, dict[str, str]]] = []

    async def acquire(self, key: str) -> None:
        return None

    async def observe(self, key: str, status: int, headers: Mapping[str, str]) -> None:
        self.seen.append((key, status, dict(headers)))


@asynccontextmanager
async def server(reply: bytes, got: list[bytes]) -> AsyncIterator[str]:
    """A loopback server answering every request with `reply`, noting each request's bytes."""

    handlers: set[asyncio.Task[Any]] = set()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handlers.add(asyncio.current_task())  # type: ignore[arg-type]
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                got.append(head + await reader.readexactly(length))
                writer.write(reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    srv = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{srv.sockets[0].getsockname()[1]}"
    finally:
        srv.close()
        await asyncio.gather(*handlers)  # each ends once the client has closed its connection


async def outcomes(
    transport: httpx2.AsyncBaseTransport, reply: bytes, base_path: str
) -> tuple[list[bytes], list[Any], list[tuple[str, int, dict[str, str]]], Any]:
    """Every call of `_CALLS` on a client over `transport`, against a server answering
    `reply`: the bytes it received, each call's outcome, what the limiter learnt, `last_rate`."""
    got: list[bytes] = []
    results: list[Any] = []
    limiter = Noting()
    async with server(reply, got) as url:
        port = url.rsplit(":", 1)[1].encode()
        client = GHLClient(
            base_url=url + base_path,
            tokens=StaticTokens({"loc": _TOKEN}),
            limiter=limiter,
            transport=transport,
            max_attempts=1,
        )
        async with client:
            for method, path, params, body in _CALLS:
                try:
                    value = await client.request(
                        method, path, key="loc", version="2021-07-28", params=params, json=body
                    )
                except GHLError as exc:
                    results.append((type(exc), exc.status, exc.body, exc.headers, str(exc)))
                else:
                    results.append(value)
            rate = client.last_rate("loc")
    return [g.replace(port, b"<port>") for g in got], results, limiter.seen, rate


@pytest.mark.parametrize("reply", _REPLIES)
@pytest.mark.parametrize("base_path", ["", "/api/"])
async def test_the_lane_sends_and_reads_what_httpx2s_objects_do(
    reply: bytes, base_path: str
) -> None:
    assert await outcomes(Counting(), reply, base_path) == await outcomes(
        Wrapped(), reply, base_path
    )


async def test_plain_calls_take_the_lane() -> None:
    transport = Counting()
    await outcomes(transport, _REPLIES[0], "")
    # As httpx2 objects only: the POST without a body (httpx2 gives it `Content-Length: 0`),
    # the call with a query and the one whose path needs encoding.
    assert transport.as_objects == 3
