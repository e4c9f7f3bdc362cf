"""The client's per-request shortcuts give what the plain way gives: the operation a path
goes to, and the URL httpx2 sends to."""

from __future__ import annotations

import random
import re
from typing import Any

import httpx2
import pytest

from ghlsync.ghl import _operations as ops
from ghlsync.ghl._client import GHLClient, RateInfo, _target, _url_prefix
from ghlsync.ghl._operations import OPERATIONS, Operation, find_operation
from ghlsync.ghl._tokens import StaticTokens


def _scan(operations: list[Operation], method: str, path: str) -> Operation | None:
    """The registry's definition: the first operation, most literal first, that matches."""
    return next((op for op in operations if op.matches(method, path)), None)


def _paths(operations: list[Operation], seed: int) -> set[str]:
    """Each template filled with words that collide with literal segments, and random paths."""
    rng = random.Random(seed)
    segments = {s for op in operations for t in op.templates for s in t.split("/")}
    words = [s for s in segments if "{" not in s] + ["x1", "", "a b", "%2F", "{id}", "?q=1"]
    paths: set[str] = set()
    for op in operations:
        for template in op.templates:
            paths.add(template)
            for _ in range(50):
                paths.add(ops._PARAM.sub(lambda _m: rng.choice(words), template))
    for _ in range(3000):
        parts = [rng.choice(words) for _ in range(rng.randint(0, 5))]
        paths.add(("/" if rng.random() < 0.9 else "") + "/".join(parts))
    return paths


def test_find_operation_is_the_scan_over_every_operation() -> None:
    for path in _paths(ops._BY_SPECIFICITY, seed=1):
        for method in ("GET", "POST", "PUT", "DELETE", "get", "PATCH"):
            assert find_operation(method, path) is _scan(ops._BY_SPECIFICITY, method, path)


def test_index_keeps_templates_that_start_with_a_parameter() -> None:
    table = [
        Operation("literal", "users", "GET", "/users/search"),
        Operation("any-first", "users", "GET", "/{kind}/search"),
        Operation("two", "users", "GET", "/{kind}/{id}"),
    ]
    index = ops._index(table)
    for path in ["/users/search", "/teams/search", "/users/u1", "/x/y", "/users", "/{a}/b"]:
        for method in ("GET", "get", "POST"):
            assert ops._find(index, method, path) is _scan(table, method, path)


def test_every_operation_finds_itself() -> None:
    for op in OPERATIONS.values():
        values = {p: f"v{i}" for i, p in enumerate(op.path_params)}
        for api in ("v2", "v3"):
            path = op.format_path(values, api)
            assert find_operation(op.method, path) is _scan(ops._BY_SPECIFICITY, op.method, path)


_BASES = [
    "https://services.leadconnectorhq.com",
    "https://services.leadconnectorhq.com/",
    "http://127.0.0.1:8123",
    "http://ghl.test/api/v2",
    "http://ghl.test/api/v2/",
    "https://User:p%40ss@Example.COM:443/x",
    "http://[::1]:8080/",
    "http://ghl.test/base?k=v",
    "http://ghl.test/#frag",
]
_PATHS = [
    "/contacts/upsert",
    "/contacts/",
    "/contacts/a%2Fb%3Fx",
    "/contacts/a b/ü/€",
    "/contacts/%zz/%41",
    "/contacts/./x/../y",
    "/../x",
    "/a:b/c",
    "/x;y=1,z/'!$&()*+@",
    "/q?x=1",
    "/f#frag",
    "//host/x",
    "contacts/x",
    "",
    "/",
    "/tab\tin",
    "https://elsewhere.test/x",
    "/" + "a" * 3000,
]
_PARAMS: list[dict[str, Any] | None] = [
    None,
    {},
    {"locationId": "loc 1", "query": "a&b=c#d"},
    {"limit": 100, "flag": True, "none": None, "list": ["x", "y"]},
    {"empty": []},
    {"ü": "€"},
]


@pytest.mark.parametrize("base", _BASES)
def test_target_url_is_the_url_httpx2_builds(base: str) -> None:
    http = httpx2.AsyncClient(base_url=base.rstrip("/"))
    prefix = _url_prefix(http.base_url)
    for path in _PATHS:
        for params in _PARAMS:
            try:
                plain = http.build_request("GET", path, params=params)
            except httpx2.InvalidURL as error:
                url, query, _ = _target(prefix, path, params)
                with pytest.raises(httpx2.InvalidURL, match=re.escape(str(error))):
                    http.build_request("GET", url, params=query)
                continue
            url, query, absolute = _target(prefix, path, params)
            built = http.build_request("GET", url, params=query)
            assert (built.url, built.url.raw_path) == (plain.url, plain.url.raw_path), path
            assert built.headers.raw == plain.headers.raw
            if absolute:  # the client then builds the request itself, from `url` alone
                assert query is None and url.startswith(("http://", "https://")), path
                alone = httpx2.Request("GET", url)
                assert (alone.url, alone.url.raw_path) == (plain.url, plain.url.raw_path), path
            else:
                assert (url, query) == (path, params), path


@pytest.mark.parametrize(
    ("method", "path", "params", "body"),
    [
        ("POST", "/contacts/upsert", None, {"locationId": "loc", "email": "a@example.com"}),
        ("GET", "/contacts/", {"locationId": "loc 1", "limit": 100, "query": None}, None),
        ("GET", "/contacts/a%2Fb", {}, None),
        ("PUT", "/contacts/c1/tasks/t1/completed", None, {"completed": True}),
        ("GET", "/contacts/c1?x=1", {"y": "2"}, None),
    ],
)
async def test_client_sends_what_httpx2_builds_from_the_path(
    method: str, path: str, params: dict[str, Any] | None, body: Any
) -> None:
    """Request line, headers (names, values, order) and body as a plain `http.request(path)`."""
    seen: list[httpx2.Request] = []

    def handle(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return httpx2.Response(200, json={})

    client = GHLClient(
        base_url="http://ghl.test/api",
        tokens=StaticTokens({"loc": "pit-0123456789abcdef"}),
        transport=httpx2.MockTransport(handle),
    )
    plain = httpx2.AsyncClient(
        base_url="http://ghl.test/api",
        headers={"Accept": "application/json", "User-Agent": "ghlsync"},
    )
    headers = {"Authorization": "Bearer pit-0123456789abcdef", "Version": "2021-07-28"}
    async with client, plain:
        for _ in range(2):  # the second time from the kept header set
            await client.request(
                method, path, key="loc", version="2021-07-28", params=params, json=body
            )
    expected = plain.build_request(method, path, params=params, json=body, headers=headers)
    for request in seen:
        assert (request.method, request.url) == (expected.method, expected.url)
        assert request.headers.raw == expected.headers.raw
        assert request.content == expected.content
        assert request.extensions["timeout"] == httpx2.Timeout(30.0).as_dict()


async def test_a_closed_client_refuses_to_send_as_httpx2_does() -> None:
    client = GHLClient(
        base_url="http://ghl.test",
        tokens=StaticTokens({"loc": "pit-0123456789abcdef"}),
        transport=httpx2.MockTransport(lambda request: httpx2.Response(200, json={})),
    )
    await client.request("GET", "/contacts/c1", key="loc", version="2021-07-28")
    await client.aclose()
    with pytest.raises(RuntimeError, match="client has been closed"):
        await client.request("GET", "/contacts/c1", key="loc", version="2021-07-28")


def test_rate_info_from_response_headers_reads_as_from_a_plain_mapping() -> None:
    rng = random.Random(3)
    names = ["x-ratelimit-max", "X-RateLimit-Remaining", "X-RATELIMIT-LIMIT-DAILY", "date"]
    names += ["x-ratelimit-daily-remaining", "x-ratelimit-interval-milliseconds"]
    values = ["1", "x", "", "10, 20", "99"]
    for _ in range(2000):
        raw = [(rng.choice(names), rng.choice(values)) for _ in range(rng.randint(0, 8))]
        headers = httpx2.Headers(raw)
        assert RateInfo.from_headers(headers) == RateInfo.from_headers(dict(headers.items()))
