"""Reading a request body without letting a sender fill our memory or hold us waiting."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Coroutine, Generator
from typing import Any

from starlette.requests import Request
from starlette.types import Receive

from ghlsync.server._responses import Rejection

DEFAULT_BODY_TIMEOUT = 30.0


class BodyTooLarge(Exception):
    """The body is over the configured size limit; answered 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the body is over the {limit}-byte limit")
        self.limit = limit
        self.message = str(self)


class BodyIncomplete(Exception):
    """The client went away before sending the whole body."""


class BodyTimeout(Exception):
    """The body did not arrive within the configured time; answered 408."""

    def __init__(self, seconds: float) -> None:
        super().__init__(
            f"the body did not arrive within {seconds:g} s (server.body_timeout); send it at once"
        )
        self.message = str(self)


async def read_limited(
    request: Request, limit: int, *, max_seconds: float = DEFAULT_BODY_TIMEOUT
) -> bytes:
    """The raw body; raises `BodyTooLarge` as soon as it is known to exceed `limit` bytes, and
    `BodyTimeout` when it has not all arrived after `max_seconds`.

    A declared Content-Length over the limit is refused before reading anything; a body sent
    without one (chunked) is refused as soon as the bytes read pass the limit.
    """
    declared = request.headers.get("content-length")
    return await receive_limited(request.receive, declared, limit, max_seconds=max_seconds)


async def receive_limited(
    receive: Receive, declared: str | None, limit: int, *, max_seconds: float
) -> bytes:
    """`read_limited` on the ASGI `receive` and the Content-Length header's value (`declared`):
    the receiver has both already, and a Starlette `Request` would parse the headers again.

    The read runs at once up to its first wait; only then is the deadline armed (see
    `_Resumed`), for `max_seconds` after the start of the read.
    """
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(limit)
    deadline = asyncio.get_running_loop().time() + max_seconds
    reading = _read(receive, limit)
    try:
        waiting = reading.send(None)
    except StopIteration as done:  # the whole body was in: no wait, so no deadline to arm
        body: bytes = done.value
        return body
    except TimeoutError:
        raise BodyTimeout(max_seconds) from None
    try:
        async with asyncio.timeout_at(deadline):
            return await _Resumed(reading, waiting)
    except TimeoutError:
        raise BodyTimeout(max_seconds) from None


async def read_body(request: Request, limit: int, *, max_seconds: float) -> bytes:
    """`read_limited`, with each way it can fail turned into the receiver's JSON refusal."""
    declared = request.headers.get("content-length")
    return await receive_body(request.receive, declared, limit, max_seconds=max_seconds)


async def receive_body(
    receive: Receive, declared: str | None, limit: int, *, max_seconds: float
) -> bytes:
    """`receive_limited`, with each way it can fail turned into the receiver's JSON refusal."""
    try:
        return await receive_limited(receive, declared, limit, max_seconds=max_seconds)
    except BodyTooLarge as exc:
        raise Rejection(413, "body_too_large", exc.message) from None
    except BodyTimeout as exc:
        raise Rejection(408, "body_timeout", exc.message) from None
    except BodyIncomplete:
        raise Rejection(400, "incomplete_body", "the client disconnected mid-body") from None


async def _read(receive: Receive, limit: int) -> bytes:
    """The body's chunks off `receive`, as Starlette's `Request.stream()` reads them (other
    message types are skipped), without its async generator."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        kind = message["type"]
        if kind == "http.request":
            chunk: bytes = message.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > limit:
                    raise BodyTooLarge(limit)
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
        elif kind == "http.disconnect":
            raise BodyIncomplete
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class _Resumed:
    """Awaits the rest of a coroutine already run up to its first wait (`waiting`, what it
    yielded to the event loop), as `await` would have: values and exceptions (a timeout's
    cancellation) are passed in, its result or exception comes out.

    Arming a deadline costs a timer per request (about 5 µs), and a delivery's body has
    almost always arrived with its headers: `receive_limited` arms it only when the read
    actually waits, at the time it would have expired had it been armed at the start.
    """

    __slots__ = ("_coro", "_waiting")

    def __init__(self, coro: Coroutine[Any, Any, bytes], waiting: Any) -> None:
        self._coro = coro
        self._waiting = waiting

    def __await__(self) -> Generator[Any, Any, bytes]:
        coro, waiting = self._coro, self._waiting
        while True:
            try:
                value = yield waiting
            except BaseException as exc:  # handed on to the coroutine, as `await` does
                step = functools.partial(coro.throw, exc)
            else:
                step = functools.partial(coro.send, value)
            try:
                waiting = step()
            except StopIteration as done:
                result: bytes = done.value
                return result
