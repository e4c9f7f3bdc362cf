"""Reading a request body without letting a sender fill our memory."""

from __future__ import annotations

from starlette.requests import ClientDisconnect, Request


class BodyTooLarge(Exception):
    """The body is over the configured size limit; answered 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the body is over the {limit}-byte limit")
        self.limit = limit
        self.message = str(self)


class BodyIncomplete(Exception):
    """The client went away before sending the whole body."""


async def read_limited(request: Request, limit: int) -> bytes:
    """The raw body; raises `BodyTooLarge` as soon as it is known to exceed `limit` bytes.

    A declared Content-Length over the limit is refused before reading anything; a body sent
    without one (chunked) is refused as soon as the bytes read pass the limit.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(limit)
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge(limit)
            chunks.append(chunk)
    except ClientDisconnect:
        raise BodyIncomplete from None
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)
