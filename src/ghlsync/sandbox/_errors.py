"""GHL-shaped error answers: `{"statusCode", "message", "error"}` as GHL's NestJS backend sends."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

_REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
}


class SandboxError(Exception):
    """An error answer; raise it from a route and the app turns it into GHL's JSON shape."""

    def __init__(self, status: int, message: str | list[str], **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra


def error_body(status: int, message: str | list[str], **extra: Any) -> dict[str, Any]:
    """The JSON body GHL sends for an error."""
    body: dict[str, Any] = {"statusCode": status, "message": message}
    if status in _REASONS:
        body["error"] = _REASONS[status]
    body.update(extra)
    return body


def error_response(
    status: int, message: str | list[str], headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    """A ready JSONResponse in GHL's error shape."""
    return JSONResponse(error_body(status, message, **extra), status_code=status, headers=headers)


def not_found(what: str) -> SandboxError:
    """404 for an unknown id (GHL's v2 specs declare none; v3 uses `NotFoundDTO`)."""
    return SandboxError(404, f"{what} not found")


def unprocessable(*messages: str) -> SandboxError:
    """422 with class-validator style messages."""
    return SandboxError(422, list(messages))


def validation_messages(exc: RequestValidationError) -> list[str]:
    """Translate pydantic errors into the class-validator wording GHL answers with."""
    messages: list[str] = []
    for err in exc.errors():
        loc = [str(part) for part in err.get("loc", ()) if part not in ("body", "query")]
        name = ".".join(loc) or "body"
        kind = str(err.get("type", ""))
        if kind == "value_error":  # our own validators word the whole message
            messages.append(str(err.get("msg", "")).removeprefix("Value error, "))
        elif kind == "extra_forbidden":
            messages.append(f"property {name} should not exist")
        elif kind == "missing":
            messages.append(f"{name} should not be empty")
        else:
            messages.append(f"{name} {_expected(kind)}")
    return messages


def _expected(kind: str) -> str:
    if kind.startswith("string"):
        return "must be a string"
    if kind.startswith("bool"):
        return "must be a boolean value"
    if kind.startswith(("int", "float", "finite", "greater", "less")):
        return "must be a number conforming to the specified constraints"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return "must be an object"
    if kind.startswith("list"):
        return "must be an array"
    if kind in ("literal_error", "enum"):
        return "must be one of the allowed values"
    return "is invalid"


# v3 routes whose spec declares the AIP error envelope (`AipErrorResponseDto`) for 400/404.
AIP_PATHS = ("/oauth/installed-locations",)
_AIP_CODES = {400: "INVALID_ARGUMENT", 404: "RESOURCE_NOT_FOUND"}


def uses_aip_errors(path: str, status: int) -> bool:
    """True when GHL answers `status` on `path` in the AIP shape (`{"error": {...}}`)."""
    return status in _AIP_CODES and path.startswith(AIP_PATHS)


def aip_error_body(status: int, message: str | list[str]) -> dict[str, Any]:
    """The AIP-compliant error envelope of v3 (`AipErrorResponseDto`)."""
    text = message if isinstance(message, str) else "; ".join(message)
    return {"error": {"code": _AIP_CODES.get(status, "UNKNOWN"), "message": text}}


async def handle_sandbox_error(request: Request, exc: Exception) -> JSONResponse:
    """Exception handler for SandboxError."""
    assert isinstance(exc, SandboxError)
    if uses_aip_errors(request.url.path, exc.status):
        return JSONResponse(aip_error_body(exc.status, exc.message), status_code=exc.status)
    return error_response(exc.status, exc.message, **exc.extra)


async def handle_validation_error(_request: Request, exc: Exception) -> JSONResponse:
    """Body/query validation failures answer 422 with a list of messages, like GHL."""
    assert isinstance(exc, RequestValidationError)
    return error_response(422, list(dict.fromkeys(validation_messages(exc))))


async def handle_http_error(_request: Request, exc: Exception) -> JSONResponse:
    """Starlette's own errors (unknown route, wrong method) in GHL's shape."""
    assert isinstance(exc, StarletteHTTPException)
    message = "Cannot find the route" if exc.status_code == 404 else str(exc.detail)
    return error_response(exc.status_code, message)
