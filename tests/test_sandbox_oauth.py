"""Sandbox OAuth: auto-approving authorization, rotating single-use refresh tokens, expiry."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx2

from ghlsync._clock import FakeClock
from ghlsync.sandbox import SandboxState
from tests._sandbox import InProcessSandbox

CLIENT = {"client_id": "sandbox-client", "client_secret": "sandbox-secret"}
REDIRECT = "http://127.0.0.1:9/callback"


def _admin(box: InProcessSandbox) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(transport=box.transport(), base_url=box.url)


async def _authorize(client: httpx2.AsyncClient, path: str = "/oauth/chooselocation") -> str:
    response = await client.get(
        path,
        params={
            "response_type": "code",
            "client_id": "sandbox-client",
            "redirect_uri": REDIRECT,
            "scope": "contacts.write",
            "state": "xyz",
        },
    )
    assert response.status_code == 302
    target = urlsplit(response.headers["location"])
    query = parse_qs(target.query)
    assert f"{target.scheme}://{target.netloc}{target.path}" == REDIRECT
    assert query["state"] == ["xyz"]
    return query["code"][0]


async def _exchange(client: httpx2.AsyncClient, code: str) -> dict[str, object]:
    response = await client.post(
        "/oauth/token",
        data={**CLIENT, "grant_type": "authorization_code", "code": code, "user_type": "Location"},
    )
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


async def test_code_flow_gives_a_working_location_token(sandbox_asgi: InProcessSandbox) -> None:
    async with _admin(sandbox_asgi) as client:
        code = await _authorize(client, "/v2/oauth/chooselocation")
        tokens = await _exchange(client, code)
        reused = await client.post(
            "/oauth/token", data={**CLIENT, "grant_type": "authorization_code", "code": code}
        )
        users = await client.get(
            "/users/",
            params={"locationId": "loc_sandbox"},
            headers={"Authorization": f"Bearer {tokens['access_token']}", "Version": "2021-07-28"},
        )
    assert tokens["locationId"] == "loc_sandbox"
    assert tokens["expires_in"] == 86399
    assert tokens["userType"] == "Location"
    assert reused.status_code == 400
    assert users.status_code == 200


async def test_unknown_client_or_wrong_secret_is_rejected(sandbox_asgi: InProcessSandbox) -> None:
    async with _admin(sandbox_asgi) as client:
        bad_client = await client.get(
            "/oauth/chooselocation", params={"client_id": "nope", "redirect_uri": REDIRECT}
        )
        code = await _authorize(client)
        bad_secret = await client.post(
            "/oauth/token",
            data={
                "client_id": "sandbox-client",
                "client_secret": "x",
                "grant_type": "authorization_code",
                "code": code,
            },
        )
    assert bad_client.status_code == 400
    assert bad_secret.status_code == 401


async def test_refresh_rotates_and_a_reused_refresh_token_is_invalid_grant(
    sandbox_asgi: InProcessSandbox,
) -> None:
    async with _admin(sandbox_asgi) as client:
        tokens = await _exchange(client, await _authorize(client))
        refresh = {
            **CLIENT,
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
        }
        first = await client.post("/oauth/token", data=refresh)
        second = await client.post("/oauth/token", data=refresh)
        counters = (await client.get("/_sandbox/counters")).json()
    assert first.status_code == 200
    assert first.json()["refresh_token"] != tokens["refresh_token"]
    assert second.status_code == 400
    assert second.json()["error"] == "invalid_grant"
    assert counters["refresh_token_uses"][tokens["refresh_token"]] == 2
    assert counters["token_calls"]["refresh_token"] == 2


async def test_access_tokens_expire() -> None:
    clock = FakeClock()
    box = InProcessSandbox(state=SandboxState(clock=clock, token_ttl=60))
    async with _admin(box) as client:
        tokens = await _exchange(client, await _authorize(client))
        headers = {"Authorization": f"Bearer {tokens['access_token']}", "Version": "2021-07-28"}
        before = await client.get("/users/", params={"locationId": "loc_sandbox"}, headers=headers)
        clock.advance(61)
        after = await client.get("/users/", params={"locationId": "loc_sandbox"}, headers=headers)
    assert tokens["expires_in"] == 60
    assert (before.status_code, after.status_code) == (200, 401)


async def test_company_token_mints_location_tokens(sandbox_asgi: InProcessSandbox) -> None:
    async with _admin(sandbox_asgi) as client:
        code = (
            (
                await client.get(
                    "/oauth/chooselocation",
                    params={
                        "client_id": "sandbox-client",
                        "redirect_uri": REDIRECT,
                        "user_type": "Company",
                    },
                )
            )
            .headers["location"]
            .split("code=")[1]
        )
        company = (
            await client.post(
                "/oauth/token",
                data={
                    **CLIENT,
                    "grant_type": "authorization_code",
                    "code": code,
                    "user_type": "Company",
                },
            )
        ).json()
        auth = {"Authorization": f"Bearer {company['access_token']}", "Version": "2021-07-28"}
        denied = await client.get("/users/", params={"locationId": "loc_sandbox"}, headers=auth)
        installed = await client.get(
            "/oauth/installedLocations",
            params={"companyId": company["companyId"], "appId": "sandbox"},
            headers=auth,
        )
        minted = await client.post(
            "/oauth/locationToken",
            data={"companyId": company["companyId"], "locationId": "loc_sandbox"},
            headers=auth,
        )
        used = await client.get(
            "/users/",
            params={"locationId": "loc_sandbox"},
            headers={
                "Authorization": f"Bearer {minted.json()['access_token']}",
                "Version": "2021-07-28",
            },
        )
    assert company["userType"] == "Company" and "locationId" not in company
    assert denied.status_code == 401
    assert [loc["_id"] for loc in installed.json()["locations"]] == ["loc_sandbox"]
    assert minted.json()["locationId"] == "loc_sandbox"
    assert used.status_code == 200
