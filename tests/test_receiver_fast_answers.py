"""The receiver's hand-built pieces against the Starlette machinery they replace: the same
answer bytes and headers, the same header lookups, the same body reads and refusals."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Message

from ghlsync.server._hooks import header_map
from ghlsync.server._limits import BodyIncomplete, BodyTimeout, BodyTooLarge, receive_limited
from ghlsync.server._responses import Rejection, accepted, duplicate, json_response


def _starlette(status: int, content: dict[str, Any]) -> Response:
    """The answers as the receiver built them before: `json.dumps` into a Starlette Response."""
    body = json.dumps(content, separators=(",", ":")).encode()
    return Response(body, status_code=status, media_type="application/json")


def _same(ours: Response, theirs: Response) -> None:
    assert (ours.status_code, ours.body, ours.raw_headers) == (
        theirs.status_code,
        theirs.body,
        theirs.raw_headers,
    )
    assert ours.background is None


@given(st.one_of(st.none(), st.text()))
def test_accepted_is_byte_identical(delivery_id: str | None) -> None:
    expected = _starlette(202, {"status": "accepted", "delivery_id": delivery_id})
    _same(accepted(delivery_id), expected)


def test_duplicate_is_byte_identical() -> None:
    _same(duplicate(), _starlette(200, {"status": "duplicate"}))


@given(
    st.sampled_from([400, 401, 404, 408, 413, 500, 503]),
    st.text(max_size=8),
    st.text(),
)
def test_refusals_are_byte_identical(status: int, code: str, message: str) -> None:
    expected = _starlette(status, {"error": code, "message": message})
    if status in (408, 413):
        expected.headers["connection"] = "close"
    _same(Rejection(status, code, message).response(), expected)


@given(
    st.dictionaries(
        st.text(max_size=5),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
            lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner),
            max_leaves=6,
        ),
        max_size=4,
    )
)
def test_json_response_is_byte_identical(content: dict[str, Any]) -> None:
    _same(json_response(200, content), _starlette(200, content))


_NAMES = st.sampled_from(
    [b"content-type", b"content-length", b"authorization", b"webhook-id", b"Webhook-Id", b"x-a"]
)


@given(st.lists(st.tuples(_NAMES, st.binary(max_size=8)), max_size=8))
def test_header_map_reads_what_starlette_headers_read(raw: list[tuple[bytes, bytes]]) -> None:
    ours = header_map(raw)
    theirs = Headers(raw=raw)
    for name in ("content-type", "content-length", "authorization", "webhook-id", "x-a", "nope"):
        assert ours.get(name) == theirs.get(name)
        assert (name in ours) == (name in theirs)


def _receive(messages: Sequence[Message]) -> Any:
    queue = list(messages)

    async def receive() -> Message:
        return queue.pop(0)

    return receive


def _scope(declared: str | None) -> dict[str, Any]:
    headers = [] if declared is None else [(b"content-length", declared.encode())]
    return {"type": "http", "method": "POST", "path": "/", "headers": headers}


async def _old_read(declared: str | None, messages: Sequence[Message], limit: int) -> bytes:
    """The body read through Starlette's `Request.stream()`, as `_limits` did before."""
    request = Request(_scope(declared), _receive(messages))
    value = request.headers.get("content-length")
    if value is not None and value.isdigit() and int(value) > limit:
        raise BodyTooLarge(limit)
    chunks: list[bytes] = []
    try:
        async for chunk in request.stream():
            if sum(map(len, chunks)) + len(chunk) > limit:
                raise BodyTooLarge(limit)
            chunks.append(chunk)
    except ClientDisconnect:
        raise BodyIncomplete from None
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _body(data: bytes, more: bool = False) -> Message:
    return {"type": "http.request", "body": data, "more_body": more}


CASES: list[tuple[str | None, list[Message]]] = [
    ("5", [_body(b"hello")]),
    (None, [_body(b"")]),
    (None, [{"type": "http.request"}]),
    (None, [_body(b"ab", True), _body(b"", True), _body(b"cd")]),
    (None, [_body(b"ab", True), {"type": "other"}, _body(b"cd")]),
    (None, [_body(b"0123456789", True), _body(b"x")]),  # chunked, passes the limit
    ("11", [_body(b"0123456789x")]),  # declared over the limit
    ("x1", [_body(b"abc")]),  # a declared length that is no number is not trusted
    (None, [_body(b"ab", True), {"type": "http.disconnect"}]),
    (None, [{"type": "http.disconnect"}]),
]


@pytest.mark.parametrize(("declared", "messages"), CASES)
def test_receive_limited_reads_as_request_stream_did(
    declared: str | None, messages: list[Message]
) -> None:
    async def outcome(read: Any) -> object:
        try:
            return await read
        except (BodyTooLarge, BodyIncomplete) as exc:
            return type(exc)

    old = asyncio.run(outcome(_old_read(declared, messages, 10)))
    new = asyncio.run(outcome(receive_limited(_receive(messages), declared, 10, max_seconds=5.0)))
    assert new == old


def _slow_receive(delays: Sequence[float], messages: Sequence[Message]) -> Any:
    """`receive` that waits `delays[i]` seconds before message i (0: answers without waiting)."""
    queue = list(zip(delays, messages, strict=True))

    async def receive() -> Message:
        if not queue:
            await asyncio.sleep(3600)
        delay, message = queue.pop(0)
        if delay:
            await asyncio.sleep(delay)
        return message

    return receive


async def _old_timed(receive: Any, limit: int, seconds: float) -> bytes:
    """The read as `_limits` did it before: a deadline armed first, then `Request.stream()`."""
    try:
        async with asyncio.timeout(seconds):
            request = Request(_scope(None), receive)
            return b"".join([chunk async for chunk in request.stream()])
    except TimeoutError:
        raise BodyTimeout(seconds) from None


TIMED: list[tuple[list[float], list[Message]]] = [
    ([0.0], [_body(b"at once")]),
    ([0.01], [_body(b"after a wait")]),
    ([0.0, 0.01, 0.0], [_body(b"a", True), _body(b"b", True), _body(b"c")]),
    ([0.01], []),  # nothing ever comes: the deadline
    ([0.15, 0.15], [_body(b"a", True), _body(b"b")]),  # each wait within, both together not
    ([0.0, 0.4], [_body(b"a", True), _body(b"b")]),
]


@pytest.mark.parametrize(("delays", "messages"), TIMED)
def test_the_deadline_runs_from_the_start_of_the_read(
    delays: list[float], messages: list[Message]
) -> None:
    async def outcome(read: Any) -> object:
        try:
            return await read
        except BodyTimeout:
            return BodyTimeout

    seconds = 0.25
    delays = delays[: len(messages)] if messages else []
    old = asyncio.run(outcome(_old_timed(_slow_receive(delays, messages), 100, seconds)))
    new = asyncio.run(
        outcome(receive_limited(_slow_receive(delays, messages), None, 100, max_seconds=seconds))
    )
    assert new == old


def test_a_cancelled_read_is_cancelled_not_timed_out() -> None:
    async def main() -> None:
        read = asyncio.ensure_future(
            receive_limited(_slow_receive([], []), None, 10, max_seconds=30.0)
        )
        await asyncio.sleep(0.01)
        read.cancel()
        with pytest.raises(asyncio.CancelledError):
            await read

    asyncio.run(main())
