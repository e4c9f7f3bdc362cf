"""The receiver's answers, as JSON bytes built without a framework round trip."""

from __future__ import annotations

import json

from starlette.responses import Response

_JSON = "application/json"


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


def json_response(status: int, content: dict[str, object]) -> Response:
    """A compact JSON response."""
    body = json.dumps(content, separators=(",", ":")).encode()
    return Response(body, status_code=status, media_type=_JSON)


def duplicate() -> Response:
    """200 for a delivery id seen before: the sender may stop retrying, nothing is redone."""
    return Response(b'{"status":"duplicate"}', status_code=200, media_type=_JSON)


def accepted(delivery_id: str | None) -> Response:
    """202 after the commit, naming the delivery id the dedupe used."""
    return json_response(202, {"status": "accepted", "delivery_id": delivery_id})
