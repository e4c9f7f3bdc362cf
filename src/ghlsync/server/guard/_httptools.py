"""The guarded protocol over uvicorn's httptools parser (llhttp, in C).

Imported only when httptools is installed (`_settings.http_parser`). Parsing with it costs less
CPU per request than h11; the guard's deadlines, cap and answers are the same
(`_conn._Guarded`). What h11 tracks itself is tracked here from the parser's callbacks:
where the client is in its request, and the size of the request head.
"""

from __future__ import annotations

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ghlsync.server.guard._conn import MAX_HEADER_BYTES, Phase, _Guarded

# The fixed bytes of a head around its parts: "<method> <url> HTTP/1.1\r\n" and the blank line.
_LINE_AND_END = len(b"  HTTP/1.1\r\n") + len(b"\r\n")
_PER_HEADER = len(b": \r\n")


class _HeadTooLarge(Exception):
    """Raised from a parser callback: httptools reports it as a parse error, answered 400."""


class _GuardedHttpTools(_Guarded, HttpToolsProtocol):
    """uvicorn's httptools protocol with header and body deadlines, a connection cap and
    `MAX_HEADER_BYTES`.

    httptools has no bound on a request head, so it is kept here, two ways: a complete head
    is measured when its last header is parsed (request line and headers as written, one
    space after each colon); one still arriving is measured by the bytes received since it
    began, and answered 400 once they pass the bound, so a head that never ends cannot grow.
    """

    _state: Phase = "idle"
    _head_bytes = 0  # received since the current head began (from a read's start; see above)

    def _phase(self) -> Phase:
        return self._state

    def data_received(self, data: bytes) -> None:
        if self._state != "body":
            # A read that starts outside a body starts within (or at) a request head. A head
            # that begins in the middle of a read (after another request) is counted from
            # the next read: the count is never more than the head's own bytes.
            self._head_bytes += len(data)
        super().data_received(data)
        if (
            self._state == "head"
            and self._head_bytes > MAX_HEADER_BYTES
            and not self.transport.is_closing()
        ):
            self.send_400_response("request head too large")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._state = "head"

    def on_headers_complete(self) -> None:
        self._head_bytes = 0
        size = len(self.parser.get_method()) + len(self.url) + _LINE_AND_END
        size += sum(len(name) + len(value) for name, value in self.headers)
        if size + _PER_HEADER * len(self.headers) > MAX_HEADER_BYTES:
            raise _HeadTooLarge
        super().on_headers_complete()
        self._state = "body"

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._state = "done"

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._watch()
