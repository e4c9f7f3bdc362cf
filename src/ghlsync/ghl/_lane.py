"""A GHL call on `KeepAliveTransport` without httpx2's request and response objects.

Most of what a call cost the client beside the wire was httpx2's objects around it: the
`Request` (its headers copied, its body read from a stream), the transport writing that
request out again as bytes, then the `Response` (its headers normalised, its body read
through decoders that do nothing) and the headers decoded once more for the rate limiter
(~40% of the client's CPU per call, loopback, the serve shape). For a plain call (an
absolute URL of the base URL with a simple path, the client's kept headers) the client
writes the request's bytes itself, the same bytes `KeepAliveTransport` would write for the
request httpx2 builds; and a plain success (2xx, an ASCII head, no `Content-Encoding`) is
read here as httpx2 would read it. Any other answer becomes the `httpx2.Response` it always
was, and goes the way it always went (errors, retries, a refreshed token).
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

import httpx2

from ghlsync.ghl._transport import Answer, response_of

__all__ = ["Plain", "header_lines", "plain", "request_bytes", "value_of"]


class Plain(NamedTuple):
    """A plain success, as the client uses one."""

    headers: dict[str, str]  # as `dict(httpx2.Response.headers.items())` gives them
    answer: Answer

    @property
    def status(self) -> int:
        return self.answer.status


def request_bytes(method: str, target: bytes, head: bytes, body: bytes) -> bytes:
    """The request as `KeepAliveTransport` writes it: request line, `head` (the header lines,
    CRLF between them), a blank line, the body."""
    return b"%s %s HTTP/1.1\r\n%s\r\n\r\n%s" % (method.encode(), target, head, body)


def header_lines(headers: httpx2.Headers) -> bytes:
    """`headers` as `request_bytes` takes them: as sent, in order."""
    return b"\r\n".join(name + b": " + value for name, value in headers.raw)


def plain(answer: Answer) -> Plain | None:
    """`answer` as a `Plain` when it is one (2xx, an ASCII head, no `Content-Encoding`);
    None when it needs httpx2's reading (`response_of`)."""
    if not 200 <= answer.status < 300 or not answer.ascii:
        return None
    headers: dict[str, str] = {}
    for raw_name, raw_value in answer.headers:
        name, value = raw_name.lower().decode("ascii"), raw_value.decode("ascii")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    if "content-encoding" in headers:
        return None
    return Plain(headers, answer)


def value_of(answer: Plain) -> Any:
    """The answer's JSON, as the client reads a `Response`: None when empty, its text when it
    is not JSON."""
    body = answer.answer.body
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return response_of(answer.answer, None).text
