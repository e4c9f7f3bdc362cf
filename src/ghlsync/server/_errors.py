"""Every refusal is `{"error": code, "message": text}`, the framework's own ones included.

Starlette answers an unknown path, a wrong method and an unhandled exception in its own shapes
(`{"detail": ...}`, plain text); a sender reading our documented shape would get nothing useful.
These handlers give them the same shape as the receiver's refusals, saying what to do instead.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from ghlsync.server._responses import json_response

_DRIPJOBS_PREFIX = "/hooks/dripjobs"


def install_json_errors(app: FastAPI) -> None:
    """Answer 404, 405 and 500 in the JSON error shape."""
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _server_error)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code, message = _describe(request, exc)
    response = json_response(exc.status_code, {"error": code, "message": message})
    for name, value in (exc.headers or {}).items():
        response.headers[name] = value  # 405 carries `Allow`
    return response


def _describe(request: Request, exc: HTTPException) -> tuple[str, str]:
    method, path = request.method, request.url.path
    if exc.status_code == 404:
        return "not_found", _not_found(path)
    if exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "another method")
        return "method_not_allowed", f"{method} is not allowed on {path}; use {allowed}"
    return "http_error", str(exc.detail)


def _not_found(path: str) -> str:
    if path.rstrip("/") == _DRIPJOBS_PREFIX or path.startswith(_DRIPJOBS_PREFIX + "/"):
        return (
            "the URL must name the event: POST /hooks/dripjobs/<event> (e.g. "
            "/hooks/dripjobs/customer.created), or /hooks/dripjobs/<connection>/<event> for a "
            "location's own URL"
        )
    return (
        f"nothing is served at {path}: DripJobs deliveries go to POST /hooks/dripjobs/<event>, "
        "GHL webhooks to POST /hooks/ghl"
    )


async def _server_error(request: Request, exc: Exception) -> Response:
    # Starlette re-raises after this answer, so uvicorn still logs the traceback once.
    message = "the server failed on this request; retry later"
    return json_response(500, {"error": "internal_error", "message": message})
