"""API v3 in the client: every operation a v3 connection sends conforms to GHL's v3 specs.

Operations GHL publishes in v3 (`apps/v3/<family>-v3.json`) go with `Version: v3`, v3 paths
and v3 bodies, and are judged against the v3 spec; the v2-only ones (opportunities, users,
workflows, campaigns, the deprecated contact list) keep their v2 Version and v2 spec. Bodies
go in and answers come out as the same models on both versions.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx2
import pytest

from ghlsync._secret import Secret
from ghlsync.ghl._client import GHLClient, probe_api_versions
from ghlsync.ghl._models import DndSetting, DndSettings, UpsertContact
from ghlsync.ghl._oauth import OAuthApp
from ghlsync.ghl._operations import OPERATIONS, V3_FAMILIES, Operation
from ghlsync.ghl._tokens import StaticTokens
from tests._openapi import load_spec, request_errors, response_errors, success_example
from tests._sandbox import InProcessSandbox
from tests.test_client_conformance import _inputs

LOC = "ve9EPM428h8vShlRW1KT"
V3_OPS = sorted(op.operation_id for op in OPERATIONS.values() if op.uses_v3("v3"))
V2_ONLY = sorted(op.operation_id for op in OPERATIONS.values() if not op.uses_v3("v3"))


def _doc(spec_dir: Path, spec_file: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((spec_dir / "apps" / spec_file).read_text())
    return data


def _recording(
    spec_dir: Path, op: Operation, api: str, seen: list[httpx2.Request]
) -> httpx2.MockTransport:
    family = op.spec_file(api).removesuffix(".json")

    def handle(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return success_example(spec_dir, family, op.method, op.path_for(api))

    return httpx2.MockTransport(handle)


async def _send_as_v3(spec_dir: Path, op: Operation) -> httpx2.Request:
    doc = _doc(spec_dir, op.spec_file("v3"))
    v3_op = Operation(op.operation_id, op.family, op.method, op.path_for("v3"), body=op.body)
    path, query, body = _inputs(doc, v3_op)
    seen: list[httpx2.Request] = []
    client = GHLClient(
        base_url="http://sandbox.test",
        tokens=StaticTokens({LOC: "pit-conformance-token-0000"}),
        transport=_recording(spec_dir, op, "v3", seen),
        api_version="v3",
    )
    async with client:
        await client.call(op.operation_id, key=LOC, path_params=path, params=query, body=body)
    assert len(seen) == 1
    return seen[0]


def test_v3_registry_matches_the_v3_specs(ghl_v3_spec_dir: Path) -> None:
    assert (len(V3_OPS), len(V2_ONLY)) == (54, 18)  # conversations: no v3 spec
    for op_id in V3_OPS:
        op = OPERATIONS[op_id]
        spec_op = _doc(ghl_v3_spec_dir, op.spec_file("v3"))["paths"][op.path_for("v3")]
        declared = spec_op[op.method.lower()]
        assert declared["operationId"] == op_id
        versions = [p["schema"]["enum"] for p in declared["parameters"] if p["name"] == "Version"]
        assert versions == [["v3"]], op_id


def test_v2_only_operations_are_absent_from_the_v3_specs(ghl_v3_spec_dir: Path) -> None:
    v3_files = {f"v3/{family}-v3.json" for family in V3_FAMILIES}
    declared = {
        (method.upper(), path)
        for spec_file in v3_files
        for path, item in _doc(ghl_v3_spec_dir, spec_file)["paths"].items()
        for method in item
    }
    for op_id in V2_ONLY:
        op = OPERATIONS[op_id]
        assert (op.method, op.path) not in declared, op_id
        assert op.version_for("v3") == op.version


@pytest.mark.parametrize("operation_id", V3_OPS)
async def test_v3_request_conforms_to_v3_spec(ghl_v3_spec_dir: Path, operation_id: str) -> None:
    op = OPERATIONS[operation_id]
    request = await _send_as_v3(ghl_v3_spec_dir, op)
    assert request.headers["Version"] == "v3"
    spec = load_spec(ghl_v3_spec_dir, op.spec_file("v3").removesuffix(".json"))
    assert request_errors(spec, request) == []


@pytest.mark.parametrize("operation_id", V2_ONLY)
async def test_v2_only_operation_keeps_its_v2_version_on_a_v3_connection(
    ghl_v3_spec_dir: Path, operation_id: str
) -> None:
    op = OPERATIONS[operation_id]
    doc = _doc(ghl_v3_spec_dir, op.spec_file("v2"))
    path, query, body = _inputs(doc, op)
    seen: list[httpx2.Request] = []
    client = GHLClient(
        base_url="http://sandbox.test",
        tokens=StaticTokens({LOC: "pit-conformance-token-0000"}),
        transport=_recording(ghl_v3_spec_dir, op, "v3", seen),
        api_version="v3",
    )
    async with client:
        await client.call(operation_id, key=LOC, path_params=path, params=query, body=body)
    assert seen[0].headers["Version"] == op.version
    assert request_errors(load_spec(ghl_v3_spec_dir, op.family), seen[0]) == []


async def test_contact_body_and_answer_are_translated_at_the_seam() -> None:
    seen: list[dict[str, Any]] = []

    def handle(request: httpx2.Request) -> httpx2.Response:
        seen.append(json.loads(request.content))
        contact = {"id": "c1", "dndSettings": {"sms": {"status": "active"}}}
        return httpx2.Response(200, json={"new": True, "contact": contact})

    body = UpsertContact(
        location_id=LOC,
        email="a@x.io",
        dnd_settings=DndSettings(SMS=DndSetting(status="active")),
        custom_fields=[{"id": "f1", "field_value": "94107"}],
    )
    client = GHLClient(
        base_url="http://x.test",
        tokens=StaticTokens({LOC: "t"}),
        transport=httpx2.MockTransport(handle),
        api_version="v3",
    )
    async with client:
        result = await client.contacts.upsert(LOC, body)
    assert seen[0]["dndSettings"] == {"sms": {"status": "active"}}
    assert seen[0]["customFields"] == [{"id": "f1", "fieldValue": "94107"}]
    assert result.new is True
    assert result.contact.model_extra == {"dndSettings": {"SMS": {"status": "active"}}}


async def test_api_version_per_connection() -> None:
    versions: dict[str, str] = {}

    def handle(request: httpx2.Request) -> httpx2.Response:
        versions[request.url.path.split("/")[2]] = request.headers["Version"]
        return httpx2.Response(200, json={"location": {}})

    client = GHLClient(
        base_url="http://x.test",
        tokens=StaticTokens({"loc_a": "t", "loc_b": "t"}),
        transport=httpx2.MockTransport(handle),
        api_version={"loc_a": "v3"},
    )
    async with client:
        await client.locations.get("loc_a")
        await client.locations.get("loc_b")
    assert versions == {"loc_a": "v3", "loc_b": "2021-07-28"}
    assert client.api_version("loc_a") == "v3" and client.api_version("other") == "v2"
    with pytest.raises(ValueError, match="api_version must be one of"):
        GHLClient(tokens=StaticTokens({}), api_version="v4")


async def test_probe_api_versions_against_the_sandbox(sandbox_asgi: InProcessSandbox) -> None:
    loc = sandbox_asgi.location_id
    tokens = StaticTokens({loc: sandbox_asgi.token, "nope": "bad-token"})
    async with GHLClient(
        base_url=sandbox_asgi.url, tokens=tokens, transport=sandbox_asgi.transport()
    ) as client:
        assert await probe_api_versions(client, loc) == {"v2": True, "v3": True}
        assert await probe_api_versions(client, "nope") == {"v2": False, "v3": False}


async def test_probe_says_which_version_a_token_accepts() -> None:
    def handle(request: httpx2.Request) -> httpx2.Response:
        if request.headers["Version"] == "v3":
            return httpx2.Response(400, json={"statusCode": 400, "message": "Version header"})
        return httpx2.Response(200, json={"location": {}})

    client = GHLClient(
        base_url="http://x.test",
        tokens=StaticTokens({LOC: "t"}),
        transport=httpx2.MockTransport(handle),
    )
    async with client:
        assert await probe_api_versions(client, LOC) == {"v2": True, "v3": False}


async def test_v3_oauth_flow_against_the_sandbox(
    ghl_v3_spec_dir: Path, sandbox_asgi: InProcessSandbox
) -> None:
    seen: list[tuple[httpx2.Request, httpx2.Response]] = []
    inner = sandbox_asgi.transport()

    async def record(request: httpx2.Request) -> httpx2.Response:
        response = await inner.handle_async_request(request)
        await response.aread()
        seen.append((request, response))
        return response

    app = OAuthApp(
        "sandbox-client",
        Secret("sandbox-secret"),
        "http://127.0.0.1:9/cb",
        base_url=sandbox_asgi.url,
        transport=httpx2.MockTransport(record),
        api_version="v3",
    )
    async with httpx2.AsyncClient(transport=inner, base_url=sandbox_asgi.url) as browser:
        consent_url = httpx2.URL(app.authorize_url("s1"))
        consent = await browser.get(consent_url.path, params=consent_url.params)
    code = consent.headers["location"].split("code=")[1].split("&")[0]
    first = await app.exchange_code(code)
    second = await app.refresh(first.refresh_token or Secret(""))
    assert first.location_id == "loc_sandbox" and second.access_token != first.access_token
    assert first.expires_at is not None
    sent = json.loads(seen[0][0].content)
    assert set(sent) == {"clientId", "clientSecret", "grantType", "code", "userType", "redirectUri"}
    assert seen[0][0].headers["Version"] == "v3"
    spec = load_spec(ghl_v3_spec_dir, "v3/oauth-v3")
    for request, response in seen:
        assert response.status_code == 200, response.text
        assert request_errors(spec, request) == []
        assert response_errors(spec, request, response) == []


async def test_raw_v2_request_goes_as_v3_on_a_v3_connection() -> None:
    seen: list[httpx2.Request] = []

    def handle(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return httpx2.Response(200, json={"succeeded": True})

    client = GHLClient(
        base_url="http://x.test",
        tokens=StaticTokens({LOC: "t"}),
        transport=httpx2.MockTransport(handle),
        api_version="v3",
    )
    async with client:
        path = "/contacts/c1/campaigns/removeAll"
        await client.request("DELETE", path, key=LOC, version="2021-07-28")
        await client.request("GET", "/users/u1", key=LOC, version="2021-07-28")
        await client.request(
            "GET", f"/locations/{LOC}", key=LOC, version="2021-07-28", translate=False
        )
    sent = [(r.url.path, r.headers["Version"]) for r in seen]
    assert sent == [
        ("/contacts/c1/campaigns/remove-all", "v3"),
        ("/users/u1", "2021-07-28"),
        (f"/locations/{LOC}", "2021-07-28"),
    ]
