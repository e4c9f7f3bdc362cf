"""OAuthApp against GHL's declared shapes (mocked at the transport seam)."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, parse_qsl, urlsplit

import httpx2
import pytest

from ghlsync._clock import FakeClock
from ghlsync._secret import Secret
from ghlsync.ghl._errors import AuthenticationError, ServerError, TransportError
from ghlsync.ghl._oauth import InvalidGrantError, LocationInactiveError, OAuthApp, TokenSet
from ghlsync.ghl._tokens import StaticTokens
from tests._auth_fakes import CLIENT_ID, CLIENT_SECRET

TOKEN_BODY = {
    "access_token": "at-abcdefghijklmnop",
    "token_type": "Bearer",
    "expires_in": 86399,
    "refresh_token": "rt-abcdefghijklmnop",
    "scope": "contacts.readonly contacts.write",
    "userType": "Location",
    "locationId": "loc_1",
    "companyId": "comp_1",
    "userId": "usr_1",
}


def _app(handler: httpx2.MockTransport, clock: FakeClock | None = None) -> OAuthApp:
    return OAuthApp(
        CLIENT_ID,
        Secret(CLIENT_SECRET),
        "http://127.0.0.1:8787/callback",
        ["contacts.readonly", "contacts.write"],
        base_url="https://ghl.test",
        marketplace_url="https://market.test/",
        transport=handler,
        clock=clock or FakeClock(),
    )


def _recording(
    status: int = 200, body: object = TOKEN_BODY
) -> tuple[httpx2.MockTransport, list[httpx2.Request]]:
    seen: list[httpx2.Request] = []

    def handle(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return httpx2.Response(status, content=json.dumps(body).encode())

    return httpx2.MockTransport(handle), seen


def test_authorize_url() -> None:
    url = _app(_recording()[0]).authorize_url("state-123")
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == (
        "https",
        "market.test",
        "/v2/oauth/chooselocation",
    )
    assert parse_qs(parts.query) == {
        "response_type": ["code"],
        "redirect_uri": ["http://127.0.0.1:8787/callback"],
        "client_id": [CLIENT_ID],
        "scope": ["contacts.readonly contacts.write"],
        "state": ["state-123"],
    }


async def test_exchange_code_posts_the_declared_form() -> None:
    clock = FakeClock()
    transport, seen = _recording()
    tokens = await _app(transport, clock).exchange_code("code-1")
    (request,) = seen
    assert (request.method, request.url.path) == ("POST", "/oauth/token")
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert "authorization" not in request.headers
    assert dict(parse_qsl(request.content.decode())) == {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "grant_type": "authorization_code",
        "code": "code-1",
        "user_type": "Location",
        "redirect_uri": "http://127.0.0.1:8787/callback",
    }
    assert tokens.access_token == Secret("at-abcdefghijklmnop")
    assert tokens.refresh_token == Secret("rt-abcdefghijklmnop")
    assert tokens.expires_at == clock.now() + 86399
    assert (tokens.key, tokens.company_id, tokens.user_type) == ("loc_1", "comp_1", "Location")
    assert tokens.scope == "contacts.readonly contacts.write"


async def test_refresh_posts_the_declared_form() -> None:
    transport, seen = _recording()
    await _app(transport).refresh(Secret("rt-old-abcdefghijkl"), "Company")
    assert dict(parse_qsl(seen[0].content.decode())) == {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "grant_type": "refresh_token",
        "refresh_token": "rt-old-abcdefghijkl",
        "user_type": "Company",
    }


async def test_location_token_uses_agency_bearer_and_version() -> None:
    body = {k: v for k, v in TOKEN_BODY.items() if k not in ("refresh_token", "companyId")}
    transport, seen = _recording(body=body)
    tokens = await _app(transport).location_token(Secret("agency-token-abcdef"), "comp_1", "loc_9")
    (request,) = seen
    assert request.url.path == "/oauth/locationToken"
    assert request.headers["authorization"] == "Bearer agency-token-abcdef"
    assert request.headers["version"] == "2021-07-28"
    assert dict(parse_qsl(request.content.decode())) == {
        "companyId": "comp_1",
        "locationId": "loc_9",
    }
    assert (tokens.location_id, tokens.company_id, tokens.refresh_token) == (
        "loc_1",
        "comp_1",
        None,
    )


async def test_installed_locations() -> None:
    body = {"locations": [{"_id": "loc_1", "name": "A", "address": ""}], "count": 1}
    transport, seen = _recording(body=body)
    found = await _app(transport).installed_locations(Secret("agency-token-x"), "comp_1", "app_1")
    assert found == [{"_id": "loc_1", "name": "A", "address": ""}]
    assert dict(seen[0].url.params) == {"companyId": "comp_1", "appId": "app_1"}
    assert seen[0].headers["version"] == "2021-07-28"


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (400, {"error": "invalid_grant", "error_description": "used"}, InvalidGrantError),
        (
            400,
            {"statusCode": 400, "message": "Invalid grant: refresh token is invalid"},
            InvalidGrantError,
        ),
        (400, {"statusCode": 400, "message": "Location is not active"}, LocationInactiveError),
        (401, {"message": "Invalid client credentials"}, AuthenticationError),
        (503, "unavailable", ServerError),
    ],
)
async def test_errors_are_classified(status: int, body: object, error: type[Exception]) -> None:
    transport, _ = _recording(status, body)
    with pytest.raises(error) as info:
        await _app(transport).refresh(Secret("rt-secret-value-123456"))
    assert "rt-secret-value-123456" not in str(info.value) + repr(info.value)
    assert CLIENT_SECRET not in str(info.value) + repr(info.value)


async def test_transport_failure_is_retriable() -> None:
    def fail(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("refused", request=request)

    with pytest.raises(TransportError):
        await _app(httpx2.MockTransport(fail)).exchange_code("c")


def test_reprs_hide_secrets() -> None:
    tokens = TokenSet.from_response(TOKEN_BODY, 0.0)
    app = _app(_recording()[0])
    shown = repr(tokens) + str(tokens) + repr(app)
    assert "abcdefghijklmnop" not in shown and CLIENT_SECRET not in shown


async def test_static_tokens() -> None:
    tokens = StaticTokens({"loc_1": "pit-token-abcdefgh", "loc_2": Secret("pit-2-abcdefgh")})
    assert await tokens.token("loc_1") == Secret("pit-token-abcdefgh")
    assert await tokens.token("loc_2") == Secret("pit-2-abcdefgh")
    assert await tokens.after_unauthorized("loc_1", Secret("pit-token-abcdefgh")) is None
    assert "pit-token" not in repr(tokens)
    with pytest.raises(AuthenticationError, match="loc_3"):
        await tokens.token("loc_3")


def test_exported_members() -> None:
    from ghlsync.ghl import _crypto, _oauth, _tokens, _vault

    assert _crypto.__all__ == [
        "SecretKeyError",
        "TokenCipher",
        "default_key_file",
        "generate_key",
        "key_fingerprint",
        "load_key_file",
        "store_holds_secrets",
    ]
    assert _oauth.__all__ == [
        "DEFAULT_BASE_URL",
        "DEFAULT_MARKETPLACE_URL",
        "InvalidGrantError",
        "LocationInactiveError",
        "OAuthApp",
        "TokenSet",
    ]
    assert _tokens.__all__ == ["StaticTokens"]
    assert _vault.__all__ == [
        "ACTIVE",
        "LOCATION_INACTIVE",
        "RECONNECT_MESSAGE",
        "RECONNECT_NEEDED",
        "ConnectionStatus",
        "TokenVault",
        "stored_connections",
        "stored_status",
    ]
