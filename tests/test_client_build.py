"""The client's own request building (`_request`, from a kept header set with Host in place)
makes what `httpx2.AsyncClient.build_request` makes: every method, with and without a body,
any JSON, on any base URL."""

from __future__ import annotations

import math
import re
from typing import Any

import httpx2
import pytest

from ghlsync.ghl._client import GHLClient
from ghlsync.ghl._tokens import StaticTokens

_TOKEN = "pit-0123456789abcdef"
_BODIES: list[Any] = [
    None,
    {},
    {"locationId": "loc", "email": "a@example.com", "tags": ["x", "y"]},
    {"name": 'Zoë ✓ \u2028 "quoted"', "n": 1.5, "deep": [1, None, True, {"k": []}]},
    [],
    "text",
    0,
    False,
]


async def _sent(base_url: str, method: str, body: Any) -> list[httpx2.Request]:
    seen: list[httpx2.Request] = []

    def handle(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return httpx2.Response(200, json={})

    async with GHLClient(
        base_url=base_url,
        tokens=StaticTokens({"loc": _TOKEN}),
        transport=httpx2.MockTransport(handle),
    ) as client:
        for version in ("2021-07-28", "2021-07-28", "2021-04-15"):  # the second: kept headers
            await client.request(method, "/custom/thing", key="loc", version=version, json=body)
    return seen


@pytest.mark.parametrize(
    "base_url", ["http://ghl.test/api", "https://ghl.test", "http://127.0.0.1:8123/"]
)
@pytest.mark.parametrize("method", ["GET", "DELETE", "POST", "PUT", "PATCH"])
@pytest.mark.parametrize("body", _BODIES, ids=range(len(_BODIES)))
async def test_request_is_what_httpx2_builds(base_url: str, method: str, body: Any) -> None:
    plain = httpx2.AsyncClient(
        base_url=base_url.rstrip("/"),
        headers={"Accept": "application/json", "User-Agent": "ghlsync"},
        timeout=30.0,
    )
    async with plain:
        for request in await _sent(base_url, method, body):
            headers = {"Authorization": f"Bearer {_TOKEN}", "Version": request.headers["Version"]}
            expected = plain.build_request(method, "/custom/thing", json=body, headers=headers)
            assert (request.method, request.url) == (expected.method, expected.url)
            assert request.headers.raw == expected.headers.raw
            assert request.content == expected.content
            assert type(request.stream) is type(expected.stream)
            assert request.extensions == expected.extensions


async def test_a_body_json_refuses_fails_as_httpx2_fails() -> None:
    with pytest.raises(ValueError) as plain:
        httpx2.Request("POST", "http://ghl.test/x", json={"n": math.nan})
    with pytest.raises(ValueError, match=re.escape(str(plain.value))):
        await _sent("http://ghl.test", "POST", {"n": math.nan})
    with pytest.raises(TypeError, match="not JSON serializable"):
        await _sent("http://ghl.test", "PUT", {"when": object()})
