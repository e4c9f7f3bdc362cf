"""The receiver's answers, as JSON bytes built without a framework round trip."""

from __future__ import annotations

import json
from json.encoder import encode_basestring_ascii

from starlette.responses import Response

_JSON = "application/json"
_CONTENT_TYPE = (b"content-type", _JSON.encode("latin-1"))
# `json.dumps(content, separators=(",", ":"))` builds an encoder per call; this one is shared.
_encode = json.JSONEncoder(separators=(",", ":")).encode


class Rejection(Exception):
    """A request refused with `status`; rendered as `{"error": code, "message": message}`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def response(self) -> Response:
        """The JSON error answer."""
        response = json_response(self.status, {"error": self.code, "message": self.message})
        if self.status in (408, 413):
            # The rest of the body may still be coming: close rather than read it to keep the
            # connection alive.
            response.headers["connection"] = "close"
        return response


class JsonResponse(Response):
    """A response whose body is JSON bytes already, with the headers Starlette's `Response`
    gives it (content-length, then content-type) but without its rendering and header checks,
    which the receiver's answer to every delivery would pay for.

    For statuses with a body only (not 1xx, 204 or 304, which must not send content-length).
    """

    media_type = _JSON

    def __init__(self, status: int, body: bytes) -> None:  # no super(): it is what we skip
        self.status_code = status
        self.background = None
        self.body = body
        self.raw_headers = [(b"content-length", str(len(body)).encode("latin-1")), _CONTENT_TYPE]


def json_response(status: int, content: dict[str, object]) -> Response:
    """A compact JSON response."""
    return JsonResponse(status, _encode(content).encode())


def duplicate() -> Response:
    """200 for a delivery id seen before: the sender may stop retrying, nothing is redone."""
    return JsonResponse(200, b'{"status":"duplicate"}')


_ACCEPTED = b'{"status":"accepted","delivery_id":'


def accepted(delivery_id: str | None) -> Response:
    """202 after the commit, naming the delivery id the dedupe used."""
    if delivery_id is None:
        return JsonResponse(202, _ACCEPTED + b"null}")
    if not isinstance(delivery_id, str):  # not expected; the general encoder says it right
        return json_response(202, {"status": "accepted", "delivery_id": delivery_id})
    return JsonResponse(202, _ACCEPTED + encode_basestring_ascii(delivery_id).encode() + b"}")
