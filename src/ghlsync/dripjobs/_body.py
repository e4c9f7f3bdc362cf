"""Parsing an inbound body: a JSON object, or a form (`application/x-www-form-urlencoded`).

"Webhooks by Zapier" POSTs either, depending on the step's payload type. Anything else, or a
body that does not parse, raises `BodyError` with what was wrong (answered 400). So does a body
ghlsync could not store or map later (`ghlsync._json`): JSON nested more than 32 levels, a
number out of range, a lone UTF-16 surrogate or U+0000 in a key or value.
"""

from __future__ import annotations

import functools
from typing import Any
from urllib.parse import parse_qsl

from ghlsync._json import UnsafeJSON, check_text, load_json

_JSON_TYPES = ("application/json",)
_FORM_TYPE = "application/x-www-form-urlencoded"


class BodyError(Exception):
    """The body is not a JSON object or a form; answered 400."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def parse_body(content_type: str | None, body: bytes) -> dict[str, Any]:
    """The payload as a dict. Without a Content-Type, a body starting with `{` is JSON."""
    media, charset = _media_type(content_type)
    if not media:
        media = "application/json" if body.lstrip().startswith(b"{") else _FORM_TYPE
    if media in _JSON_TYPES or media.endswith("+json"):
        return _parse_json(body)
    if media == _FORM_TYPE:
        return _parse_form(body, charset or "utf-8")
    raise BodyError(
        "unsupported_media_type",
        f"Content-Type {media!r} is not supported; send application/json or {_FORM_TYPE}",
    )


@functools.lru_cache(maxsize=256)  # a sender uses the same Content-Type on every delivery
def _media_type(content_type: str | None) -> tuple[str, str | None]:
    if not content_type:
        return "", None
    media, *params = (part.strip() for part in content_type.split(";"))
    charset = None
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip('"') or None
    return media.lower(), charset


def _parse_json(body: bytes) -> dict[str, Any]:
    if not body.strip():
        raise BodyError("malformed_body", "the body is empty; send a JSON object")
    try:
        parsed = load_json(body)
    except UnsafeJSON as exc:
        raise BodyError("malformed_body", f"the body is refused: {exc}") from None
    if not isinstance(parsed, dict):
        kind = type(parsed).__name__
        raise BodyError("malformed_body", f"the JSON body must be an object, not {kind}")
    return parsed


def _parse_form(body: bytes, charset: str) -> dict[str, Any]:
    try:
        text = body.decode(charset)
    except (LookupError, UnicodeDecodeError) as exc:
        raise BodyError("malformed_body", f"the form body is not valid {charset}: {exc}") from None
    try:
        pairs = parse_qsl(
            text,
            keep_blank_values=True,
            strict_parsing=bool(text),
            encoding=charset,
            errors="strict",
        )
    except ValueError as exc:  # UnicodeDecodeError (a bad %-escape) is a ValueError too
        raise BodyError("malformed_body", f"the form body does not parse: {exc}") from None
    try:
        for key, value in pairs:
            check_text(key, "a form field name")
            check_text(value, f"the form field {key[:40]!r}")
    except UnsafeJSON as exc:
        raise BodyError("malformed_body", f"the form body is refused: {exc}") from None
    # A repeated field keeps its last value, as most form handlers do.
    return dict(pairs)
