"""What the guarded protocols share, whichever parser reads the requests (`_settings.py`).

`_Guarded` holds the deadlines, the connection cap, the refusals and the 400 answer; a
protocol built on it says only where the client is in its request (`_phase`), read from its
parser: h11's state (`_h11.py`) or the callbacks of httptools (`_httptools.py`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Literal, cast

if TYPE_CHECKING:
    from ghlsync.server.guard._settings import ConnectionLimits, ThrottledLog

MAX_HEADER_BYTES = 16 * 1024  # request line and headers; more is answered 400
LINGER_SECONDS = 2.0  # reading the rest of a refused body before closing (`_CoalescedWrites`)
BODY_BACKSTOP_GRACE = 2.0  # at most; the receiver's own 408 comes first when it reads the body

# Where the client is in its request. "idle": nothing of one yet; "head": its request line and
# headers have begun; "body": the head is in, its body is owed; "done": all of it is in.
Phase = Literal["idle", "head", "body", "done"]
Owed = Literal["head", "body"]  # what a deadline waits for ("head" covers "idle" too)


def raw_json(status: int, reason: str, code: str, message: str) -> bytes:
    """A complete HTTP/1.1 answer that closes the connection, written before any request."""
    body = json.dumps({"error": code, "message": message}, separators=(",", ":")).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


_OVERLOADED = raw_json(
    503, "Service Unavailable", "overloaded", "too many open connections; retry shortly"
)
_BAD_REQUEST = raw_json(
    400,
    "Bad Request",
    "bad_request",
    "the request is not valid HTTP/1.1 (or its headers are over 16 KiB)",
)


class _Guarded(asyncio.Protocol):
    """Header and body deadlines and a connection cap, over one of uvicorn's HTTP protocols.

    Comes first in the bases (`class P(_Guarded, H11Protocol)`), so its methods wrap the
    parser protocol's through `super()`.
    """

    limits: ClassVar[ConnectionLimits]
    throttle: ClassVar[ThrottledLog]
    # set by the parser protocol's __init__ and connection_made
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    connections: set[Any]

    _deadline: asyncio.TimerHandle | None = None
    _waiting_for: Owed | None = None
    _refused = False

    def _phase(self) -> Phase:
        """Where the client is in its request, by the parser."""
        raise NotImplementedError

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self.limits.max_connections:
            self._refuse(transport)
            return
        super().connection_made(transport)
        writes = _CoalescedWrites(transport, self.loop, self._body_unread)
        self.transport = cast(asyncio.Transport, writes)
        self._expect("head", self.limits.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        if not self._refused:
            super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        super().data_received(data)
        self._watch()

    def _body_unread(self) -> bool:
        """The client is still sending a body we answered without reading (408, 413)."""
        return self._phase() == "body"

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a request it cannot parse, in our JSON error shape."""
        self.throttle.warn("malformed", "answered 400 to requests that are not valid HTTP")
        self.transport.write(_BAD_REQUEST)
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
        phase = self._phase()
        if phase == "head":
            self._expect("head", self.limits.header_timeout)  # a request head has begun
        elif phase == "body":
            grace = min(BODY_BACKSTOP_GRACE, self.limits.body_timeout)
            self._expect("body", self.limits.body_timeout + grace)
        elif phase == "done":
            self._cancel()

    def _expect(self, owed: Owed, seconds: float) -> None:
        if self._waiting_for == owed and self._deadline is not None:
            return  # the deadline runs from the start of the wait, not from the last byte
        self._cancel()
        self._waiting_for = owed
        self._deadline = self.loop.call_later(seconds, self._expire, owed)

    def _cancel(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline, self._waiting_for = None, None

    def _expire(self, owed: Owed) -> None:
        self._deadline, self._waiting_for = None, None
        phase = self._phase()
        still_owed = phase in ("idle", "head") if owed == "head" else phase == "body"
        if not still_owed or self.transport.is_closing():
            return
        if owed == "head":
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
