"""Request URLs under the client's base URL, without parsing each one again.

`httpx2.URL(text)` parses and checks the whole string (its characters, its parts, the path's
dot segments and percent-encoding): ~15 µs, paid by nearly every call the flows send,
because their paths carry ids (`/contacts/{id}/tags`) and so miss httpx2's cache of parsed
URLs. A URL that is the base URL's prefix (parsed once) followed by a *simple tail* (path
segments of unreserved characters, RFC 3986 §2.3, none starting with ".") parses to the
prefix's parts with the tail appended to its path: such a tail has nothing to encode, no dot
segment to drop, no query and no fragment. `UrlMaker.url` builds exactly that (~1 µs); any
other URL goes to `httpx2.URL` as before. The maker checks at construction that httpx2
agrees on a sample, and tests compare the two on generated paths.
"""

from __future__ import annotations

import re

import httpx2
from httpx2._urlparse import ParseResult

__all__ = ["UrlMaker"]

# Segments of unreserved characters, the first not a ".", each but the last ending in "/".
_SEGMENT = r"[A-Za-z0-9_~-][A-Za-z0-9._~-]*"
_SIMPLE_TAIL = re.compile(rf"(?:{_SEGMENT}/)*(?:{_SEGMENT})?")
_SAMPLE_TAIL = "contacts/x1-_~.y/tags"


class UrlMaker:
    """`httpx2.URL(text)` for absolute URLs, cheaper for `prefix` + a simple tail."""

    __slots__ = ("_base", "_prefix")

    def __init__(self, prefix: str | None) -> None:
        self._prefix = prefix or ""
        self._base = _parsed_prefix(prefix) if prefix else None

    def url(self, text: str) -> httpx2.URL:
        """The parsed URL of `text`, as `httpx2.URL(text)` gives it."""
        base = self._base
        if base is not None and text.startswith(self._prefix):
            tail = text[len(self._prefix) :]
            if _SIMPLE_TAIL.fullmatch(tail):
                return _with_path(base, base.path + tail)
        return httpx2.URL(text)

    def target(self, text: str) -> bytes | None:
        """`self.url(text).raw_path` (what a request line names) where `text` is the prefix
        and a simple tail, without making the URL; None for any other URL."""
        base = self._base
        if base is not None and text.startswith(self._prefix):
            tail = text[len(self._prefix) :]
            if _SIMPLE_TAIL.fullmatch(tail):
                return (base.path + tail).encode("ascii")
        return None


def _parsed_prefix(prefix: str) -> ParseResult | None:
    """The prefix's parts as httpx2 parses them; None (always parse) when it has a query or a
    fragment, or when httpx2 parses prefix + a sample tail otherwise than this module would."""
    parsed = httpx2.URL(prefix)._uri_reference
    if parsed.query is not None or parsed.fragment is not None or not parsed.path.endswith("/"):
        return None
    expected = httpx2.URL(prefix + _SAMPLE_TAIL)._uri_reference
    if _with_path(parsed, parsed.path + _SAMPLE_TAIL)._uri_reference != expected:
        return None
    return parsed


def _with_path(parsed: ParseResult, path: str) -> httpx2.URL:
    """An `httpx2.URL` of `parsed`'s parts with `path` (already a valid, encoded path)."""
    url = httpx2.URL.__new__(httpx2.URL)
    url._uri_reference = parsed._replace(path=path)
    return url
