"""Check captured httpx2 traffic against GHL's official OpenAPI specs (openapi-core).

    spec = load_spec(ghl_spec_dir, "contacts")       # apps/contacts.json, parsed once
    validate_request(spec, request)                  # raises when the request breaks the spec
    validate_response(spec, request, response)
    request_errors(spec, request)                    # the same, as a list of readable strings
    example(doc, schema)                             # a value built from a schema's examples
    success_example(spec_dir, "contacts", "GET", "/contacts/{contactId}")  # an httpx2.Response

Whatever host the traffic went to (a MockTransport, the sandbox on loopback), it is judged as if
sent to the spec's server, `https://services.leadconnectorhq.com`.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2
from openapi_core import Config, OpenAPI
from openapi_core.datatypes import RequestParameters
from werkzeug.datastructures import Headers, ImmutableMultiDict

SPEC_SERVER = "https://services.leadconnectorhq.com"


@functools.cache
def _load(path: Path) -> OpenAPI:
    data = json.loads(path.read_text(encoding="utf-8"))
    # GHL's security schemes carry `name`/`in` beside `type: http`, which strict OpenAPI 3.0
    # rejects; the operations themselves are sound, so skip the whole-document check.
    config = Config(spec_validator_cls=None)
    # base_uri lets the `../common/common-schemas.json` references resolve.
    return OpenAPI.from_dict(data, config=config, base_uri=path.as_uri())


def load_spec(spec_dir: Path, family: str) -> OpenAPI:
    """The parsed `apps/<family>.json` (e.g. "contacts", "calendars"), cached per process."""
    return _load((Path(spec_dir) / "apps" / f"{family}.json").resolve())


class _OpenAPIRequest:
    """An httpx2.Request seen through openapi-core's `Request` protocol."""

    def __init__(self, request: httpx2.Request) -> None:
        self._request = request
        query = parse_qs(urlsplit(str(request.url)).query, keep_blank_values=True)
        self.parameters = RequestParameters(
            query=ImmutableMultiDict([(k, v) for k, vs in query.items() for v in vs]),
            header=Headers(list(request.headers.items())),
            cookie=ImmutableMultiDict(),
        )

    @property
    def host_url(self) -> str:
        return SPEC_SERVER

    @property
    def path(self) -> str:
        return self._request.url.path

    @property
    def method(self) -> str:
        return self._request.method.lower()

    @property
    def body(self) -> bytes | None:
        content = self._request.read()
        return content or None

    @property
    def content_type(self) -> str:
        return str(self._request.headers.get("content-type", "application/json")).lower()


class _OpenAPIResponse:
    """An httpx2.Response seen through openapi-core's `Response` protocol."""

    def __init__(self, response: httpx2.Response) -> None:
        self._response = response

    @property
    def status_code(self) -> int:
        return self._response.status_code

    @property
    def content_type(self) -> str:
        return str(self._response.headers.get("content-type", "application/json")).lower()

    @property
    def headers(self) -> Headers:
        return Headers(list(self._response.headers.items()))

    @property
    def data(self) -> bytes | None:
        return self._response.read() or None


def validate_request(spec: OpenAPI, request: httpx2.Request) -> None:
    """Raise an openapi-core validation error when `request` breaks the spec."""
    spec.validate_request(_OpenAPIRequest(request))


def validate_response(spec: OpenAPI, request: httpx2.Request, response: httpx2.Response) -> None:
    """Raise an openapi-core validation error when `response` breaks the spec for `request`."""
    spec.validate_response(_OpenAPIRequest(request), _OpenAPIResponse(response))


def request_errors(spec: OpenAPI, request: httpx2.Request) -> list[str]:
    """Every problem openapi-core finds with `request`, as readable strings (empty when valid)."""
    return [_describe(e) for e in spec.iter_request_errors(_OpenAPIRequest(request))]


def response_errors(spec: OpenAPI, request: httpx2.Request, response: httpx2.Response) -> list[str]:
    """Every problem openapi-core finds with `response`, as readable strings."""
    found = spec.iter_response_errors(_OpenAPIRequest(request), _OpenAPIResponse(response))
    return [_describe(e) for e in found]


def _describe(error: Exception) -> str:
    inner = [str(e) for e in getattr(error, "schema_errors", ())]
    cause = f" ({error.__cause__})" if error.__cause__ else ""
    return f"{type(error).__name__}: {error}{cause}" + (f" {inner}" if inner else "")


def _resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if not isinstance(ref, str):
        return schema
    if not ref.startswith("#/"):
        return {}  # external (common errors); not needed for success examples
    node: Any = doc
    for part in ref[2:].split("/"):
        node = node[part]
    return _resolve(doc, node)


def example(doc: dict[str, Any], schema: dict[str, Any], depth: int = 0) -> Any:
    """A value for `schema` built from its examples (or a plain placeholder)."""
    schema = _resolve(doc, schema)
    if "example" in schema:
        return schema["example"]
    if "enum" in schema:
        return schema["enum"][0]
    for combo in ("allOf", "anyOf", "oneOf"):
        if combo in schema and depth < 6:
            return example(doc, schema[combo][0], depth + 1)
    kind = schema.get("type")
    if kind == "array":
        return [example(doc, schema.get("items", {}), depth + 1)] if depth < 6 else []
    if kind == "object" or "properties" in schema:
        props = schema.get("properties", {}) if depth < 6 else {}
        return {k: example(doc, v, depth + 1) for k, v in props.items()}
    return {"string": "x", "number": 1, "integer": 1, "boolean": True}.get(str(kind), "x")


def success_example(spec_dir: Path, family: str, method: str, path: str) -> httpx2.Response:
    """A response built from the examples of the documented success answer of an operation."""
    doc = json.loads((Path(spec_dir) / "apps" / f"{family}.json").read_text(encoding="utf-8"))
    responses = doc["paths"][path][method.lower()].get("responses", {})
    status = next((s for s in ("200", "201") if s in responses), "200")
    content = responses.get(status, {}).get("content", {}).get("application/json", {})
    body = example(doc, content.get("schema", {})) if content else {}
    return httpx2.Response(int(status), json=body)
