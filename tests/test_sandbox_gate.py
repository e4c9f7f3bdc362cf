"""Sandbox request policy: auth, Version header, rate limits with headers, faults, call log."""

from __future__ import annotations

import httpx2
import pytest

from ghlsync._clock import FakeClock
from ghlsync.sandbox import SandboxServer, SandboxState
from tests._sandbox import InProcessSandbox

RATE_HEADERS = (
    "X-RateLimit-Max",
    "X-RateLimit-Remaining",
    "X-RateLimit-Interval-Milliseconds",
    "X-RateLimit-Limit-Daily",
    "X-RateLimit-Daily-Remaining",
)


async def test_bad_token_is_401_in_ghl_shape(sandbox_asgi: InProcessSandbox) -> None:
    async with sandbox_asgi.client(token="wrong") as client:
        response = await client.get("/contacts/abc")
    assert response.status_code == 401
    assert response.json() == {
        "statusCode": 401,
        "message": "Invalid token: access token is invalid",
        "error": "Unauthorized",
    }


@pytest.mark.parametrize(
    ("path", "version", "status"),
    [
        ("/contacts/abc", None, 400),
        ("/contacts/abc", "2021-04-15", 400),
        ("/contacts/abc", "2021-07-28", 404),
        ("/calendars/events/appointments/abc", "2021-07-28", 400),
        ("/calendars/events/appointments/abc", "2021-04-15", 404),
    ],
)
async def test_version_header_is_checked_per_api(
    sandbox_asgi: InProcessSandbox, path: str, version: str | None, status: int
) -> None:
    async with sandbox_asgi.client(version=version) as client:
        response = await client.get(path)
    assert response.status_code == status
    assert response.json()["statusCode"] == status


async def test_every_api_response_has_rate_limit_headers(sandbox_asgi: InProcessSandbox) -> None:
    async with sandbox_asgi.client() as client:
        ok = await client.get("/users/", params={"locationId": "loc_sandbox"})
        missing = await client.get("/contacts/nope")
        invalid = await client.post("/contacts/", json={"bogus": 1})
    for response in (ok, missing, invalid):
        assert all(name in response.headers for name in RATE_HEADERS), response.headers
    assert ok.headers["X-RateLimit-Max"] == "100"
    assert ok.headers["X-RateLimit-Interval-Milliseconds"] == "10000"
    assert ok.headers["X-RateLimit-Limit-Daily"] == "200000"
    assert int(invalid.headers["X-RateLimit-Remaining"]) == 97


async def test_429_past_the_burst_then_window_slides() -> None:
    clock = FakeClock()
    box = InProcessSandbox(state=SandboxState(burst=3, interval_ms=1000, clock=clock))
    async with box.client() as client:
        statuses = []
        remaining = []
        for _ in range(4):
            response = await client.get("/users/", params={"locationId": "loc_sandbox"})
            statuses.append(response.status_code)
            remaining.append(response.headers["X-RateLimit-Remaining"])
        throttled = response.json()
        clock.advance(1.001)
        after = await client.get("/users/", params={"locationId": "loc_sandbox"})
    assert statuses == [200, 200, 200, 429]
    assert remaining == ["2", "1", "0", "0"]
    assert throttled["statusCode"] == 429
    assert after.status_code == 200
    assert box.state.throttled["loc_sandbox"] == 1


async def test_limits_are_per_location() -> None:
    box = InProcessSandbox(state=SandboxState(burst=1, clock=FakeClock()))
    _, other_token = box.state.add_location("loc_b")
    async with box.client() as a, box.client(token=other_token) as b:
        first = await a.get("/users/", params={"locationId": "loc_sandbox"})
        second = await a.get("/users/", params={"locationId": "loc_sandbox"})
        other = await b.get("/users/", params={"locationId": "loc_b"})
    assert (first.status_code, second.status_code, other.status_code) == (200, 429, 200)


async def test_daily_limit_answers_429() -> None:
    box = InProcessSandbox(state=SandboxState(daily=2, clock=FakeClock()))
    async with box.client() as client:
        codes = [
            (await client.get("/users/", params={"locationId": "loc_sandbox"})).status_code
            for _ in range(3)
        ]
        last = await client.get("/users/", params={"locationId": "loc_sandbox"})
    assert codes == [200, 200, 429]
    assert last.headers["X-RateLimit-Daily-Remaining"] == "0"


async def test_injected_429_and_500_apply_no_write(sandbox_asgi: InProcessSandbox) -> None:
    async with sandbox_asgi.client() as client:
        admin = httpx2.AsyncClient(transport=sandbox_asgi.transport(), base_url=sandbox_asgi.url)
        await admin.put("/_sandbox/faults", json={"429": 1.0})
        throttled = await client.post("/contacts/", json={"locationId": "loc_sandbox"})
        await admin.put("/_sandbox/faults", json={"500": 1.0})
        failed = await client.post("/contacts/", json={"locationId": "loc_sandbox"})
        await admin.put("/_sandbox/faults", json={})
        fine = await client.post("/contacts/", json={"locationId": "loc_sandbox"})
        log = (await admin.get("/_sandbox/requests")).json()
        await admin.aclose()
    assert (throttled.status_code, failed.status_code, fine.status_code) == (429, 500, 201)
    assert "X-RateLimit-Remaining" in throttled.headers
    assert len(sandbox_asgi.state.locations["loc_sandbox"].contacts) == 1
    assert [entry["fault"] for entry in log] == ["429", "500", None]
    assert [entry["status"] for entry in log] == [429, 500, 201]
    assert log[0]["location"] == "loc_sandbox" and log[0]["method"] == "POST"


def test_timeout_fault_applies_the_write_then_answers_too_late(sandbox: SandboxServer) -> None:
    headers = {"Authorization": f"Bearer {sandbox.token}", "Version": "2021-07-28"}
    with httpx2.Client(base_url=sandbox.url, headers=headers) as client:
        client.put("/_sandbox/faults", json={"timeout": 1.0, "timeout_seconds": 0.5})
        with pytest.raises(httpx2.ReadTimeout):
            client.post("/contacts/", json={"locationId": sandbox.location_id}, timeout=0.1)
        client.put("/_sandbox/faults", json={})
        state = client.get("/_sandbox/state").json()
    assert len(state["locations"][sandbox.location_id]["contacts"]) == 1


def test_reset_fault_breaks_the_connection_before_the_write(sandbox: SandboxServer) -> None:
    headers = {"Authorization": f"Bearer {sandbox.token}", "Version": "2021-07-28"}
    with httpx2.Client(base_url=sandbox.url, headers=headers) as client:
        client.put("/_sandbox/faults", json={"reset": 1.0})
        with pytest.raises(httpx2.TransportError):
            client.post("/contacts/", json={"locationId": sandbox.location_id})
        client.put("/_sandbox/faults", json={})
        state = client.get("/_sandbox/state").json()
    assert state["locations"][sandbox.location_id]["contacts"] == []


async def test_faults_are_reproducible_with_a_seed(sandbox_asgi: InProcessSandbox) -> None:
    async def run() -> list[int]:
        async with sandbox_asgi.client() as client:
            admin = httpx2.AsyncClient(
                transport=sandbox_asgi.transport(), base_url=sandbox_asgi.url
            )
            await admin.post("/_sandbox/reset")
            await admin.put("/_sandbox/faults", json={"500": 0.5, "seed": 7})
            codes = [
                (await client.get("/users/", params={"locationId": "loc_sandbox"})).status_code
                for _ in range(20)
            ]
            await admin.aclose()
            return codes

    first, second = await run(), await run()
    assert first == second
    assert 200 in first and 500 in first


async def test_reset_fault_in_process_is_a_transport_error(sandbox_asgi: InProcessSandbox) -> None:
    sandbox_asgi.state.faults.reset = 1.0
    async with sandbox_asgi.client() as client:
        with pytest.raises(httpx2.TransportError):
            await client.post("/contacts/", json={"locationId": "loc_sandbox"})
    assert sandbox_asgi.state.locations["loc_sandbox"].contacts == {}
    assert sandbox_asgi.state.requests[-1]["fault"] == "reset"
