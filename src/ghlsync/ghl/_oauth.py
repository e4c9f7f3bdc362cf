"""GHL's OAuth 2.0 endpoints: the authorize URL, code exchange, refresh, location tokens.

Bodies are form-encoded as `apps/oauth.json` declares (`GetAccessCodebodyDto`,
`GetLocationAccessCodeBodyDto`). Refresh tokens rotate and are single-use: a second use
answers 400 `invalid_grant`, raised here as `InvalidGrantError`. "Location is not active"
(a paused sub-account) is `LocationInactiveError`: the same refresh token works again once the
location is reactivated, so it must be kept.

With `api_version="v3"` (`apps/v3/oauth-v3.json`) every call sends `Version: v3`; the token
call sends a JSON body with camelCase keys (`clientId`, `grantType`, `refreshToken`, ...) and
GHL answers camelCase (`accessToken`, `expiresIn`, ...); the agency endpoints move to
`/oauth/location-token` and `/oauth/installed-locations` (answer `{"items": [...]}`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx2

from ghlsync._clock import SYSTEM_CLOCK, Clock
from ghlsync._secret import Secret
from ghlsync.ghl._errors import (
    BadRequestError,
    GHLError,
    RetriableError,
    TransportError,
    classify,
)

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_MARKETPLACE_URL",
    "InvalidGrantError",
    "LocationInactiveError",
    "OAuthApp",
    "TokenSet",
]

DEFAULT_BASE_URL = "https://services.leadconnectorhq.com"
DEFAULT_MARKETPLACE_URL = "https://marketplace.gohighlevel.com"
# GHL moved the consent page under /v2 on 2026-05-27 (docs/oauth/Authorization.md).
AUTHORIZE_PATH = "/v2/oauth/chooselocation"
API_VERSION = "2021-07-28"
API_V3 = "v3"
_V3_PATHS = {
    "/oauth/locationToken": "/oauth/location-token",
    "/oauth/installedLocations": "/oauth/installed-locations",
}
_V3_KEYS = {
    "client_id": "clientId",
    "client_secret": "clientSecret",
    "grant_type": "grantType",
    "refresh_token": "refreshToken",
    "user_type": "userType",
    "redirect_uri": "redirectUri",
}


class InvalidGrantError(BadRequestError):
    """400 invalid_grant: the code or refresh token is invalid, expired or already used."""


class LocationInactiveError(RetriableError):
    """400 "Location is not active": keep the refresh token, it works again on reactivation."""


@dataclass(frozen=True, slots=True)
class TokenSet:
    """What GHL's token endpoints hand out (tokens masked in every repr)."""

    access_token: Secret
    refresh_token: Secret | None
    expires_at: float | None  # epoch seconds
    scope: str = ""
    user_type: str = "Location"
    location_id: str | None = None
    company_id: str | None = None
    user_id: str | None = None

    @property
    def key(self) -> str:
        """The resource the token is for: the location id, else the company id."""
        key = self.location_id or self.company_id
        if not key:
            raise ValueError("token set names neither a location nor a company")
        return key

    @classmethod
    def from_response(
        cls, body: Mapping[str, Any], now: float, user_type: str = "Location"
    ) -> TokenSet:
        """Parse a 200 answer of `/oauth/token` or `/oauth/locationToken` (v2 or v3 keys)."""
        expires_in = _either(body, "expires_in", "expiresIn")
        refresh = _either(body, "refresh_token", "refreshToken")
        return cls(
            access_token=Secret(str(_required(body, "access_token", "accessToken"))),
            refresh_token=Secret(str(refresh)) if refresh else None,
            expires_at=now + float(expires_in) if expires_in is not None else None,
            scope=str(body.get("scope") or ""),
            user_type=str(body.get("userType") or user_type),
            location_id=body.get("locationId") or None,
            company_id=body.get("companyId") or None,
            user_id=body.get("userId") or None,
        )


class OAuthApp:
    """One marketplace app's credentials and the calls made with them."""

    def __init__(
        self,
        client_id: str,
        client_secret: Secret,
        redirect_uri: str,
        scopes: Sequence[str] = (),
        *,
        base_url: str = DEFAULT_BASE_URL,
        marketplace_url: str = DEFAULT_MARKETPLACE_URL,
        transport: httpx2.AsyncBaseTransport | None = None,
        clock: Clock = SYSTEM_CLOCK,
        timeout: float = 20.0,  # below SQLite's busy timeout: a refresh holds its write lock
        api_version: str = "v2",
    ) -> None:
        if api_version not in ("v2", "v3"):
            raise ValueError(f"api_version must be 'v2' or 'v3', not {api_version!r}")
        self.api_version = api_version
        self.client_id = client_id
        self.client_secret = client_secret
        self.redirect_uri = redirect_uri
        self.scopes = list(scopes)
        self.base_url = base_url.rstrip("/")
        self.marketplace_url = marketplace_url.rstrip("/")
        self._transport = transport
        self._clock = clock
        self._timeout = timeout

    def __repr__(self) -> str:
        return f"OAuthApp(client_id={self.client_id!r}, base_url={self.base_url!r})"

    def authorize_url(self, state: str) -> str:
        """The consent page the user opens; GHL redirects back with `code` and `state`."""
        query = {
            "response_type": "code",
            "redirect_uri": self.redirect_uri,
            "client_id": self.client_id,
            "scope": " ".join(self.scopes),
            "state": state,
        }
        return f"{self.marketplace_url}{AUTHORIZE_PATH}?{urlencode(query)}"

    async def exchange_code(self, code: str, user_type: str = "Location") -> TokenSet:
        """Trade the authorization code from the redirect for tokens."""
        form = self._credentials("authorization_code")
        form.update(code=code, user_type=user_type, redirect_uri=self.redirect_uri)
        return await self._token_call("/oauth/token", form, user_type)

    async def refresh(self, refresh_token: Secret, user_type: str = "Location") -> TokenSet:
        """Spend `refresh_token` (single-use) for a new access and refresh token."""
        form = self._credentials("refresh_token")
        form.update(refresh_token=refresh_token.reveal(), user_type=user_type)
        return await self._token_call("/oauth/token", form, user_type)

    async def location_token(
        self, company_token: Secret, company_id: str, location_id: str
    ) -> TokenSet:
        """Mint a sub-account token from an agency token (`POST /oauth/locationToken`)."""
        form = {"companyId": company_id, "locationId": location_id}
        tokens = await self._token_call("/oauth/locationToken", form, "Location", company_token)
        if tokens.company_id is None or tokens.location_id is None:
            tokens = _with_ids(tokens, company_id, location_id)
        return tokens

    async def installed_locations(
        self, company_token: Secret, company_id: str, app_id: str, **filters: str
    ) -> list[dict[str, Any]]:
        """Locations of `company_id` where app `app_id` is installed (first page)."""
        params = {"companyId": company_id, "appId": app_id, **filters}
        body = await self._send("GET", "/oauth/installedLocations", company_token, params=params)
        locations = body.get("locations") or body.get("items") or []
        return [dict(item) for item in locations]

    def _credentials(self, grant_type: str) -> dict[str, str]:
        return {
            "client_id": self.client_id,
            "client_secret": self.client_secret.reveal(),
            "grant_type": grant_type,
        }

    async def _token_call(
        self, path: str, form: dict[str, str], user_type: str, bearer: Secret | None = None
    ) -> TokenSet:
        if self.api_version == API_V3 and path == "/oauth/token":
            body = await self._send("POST", path, bearer, json=_camel(form))
        else:
            body = await self._send("POST", path, bearer, data=form)
        return TokenSet.from_response(body, self._clock.now(), user_type)

    async def _send(
        self,
        method: str,
        path: str,
        bearer: Secret | None,
        *,
        data: Mapping[str, str] | None = None,
        json: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        headers = {"Accept": "application/json"}
        if self.api_version == API_V3:
            headers["Version"] = API_V3  # v3 declares it on every OAuth operation
            path = _V3_PATHS.get(path, path)
        if bearer is not None:
            # The v2 token endpoint declares no Version; the agency endpoints require it.
            headers.setdefault("Version", API_VERSION)
            headers["Authorization"] = f"Bearer {bearer.reveal()}"
        try:
            async with httpx2.AsyncClient(
                base_url=self.base_url, transport=self._transport, timeout=self._timeout
            ) as client:
                response = await client.request(
                    method, path, data=data, json=json, params=params, headers=headers
                )
        except httpx2.HTTPError as exc:
            raise TransportError(
                f"{exc.__class__.__name__} talking to GHL", method=method, path=path
            ) from None
        return _parse(response, method, path)


def _parse(response: httpx2.Response, method: str, path: str) -> dict[str, Any]:
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text[:500]
    if response.is_success and isinstance(body, dict):
        return body
    raise _error_for(response.status_code, body, response.headers, method, path)


def _error_for(
    status: int, body: Any, headers: Mapping[str, str], method: str, path: str
) -> GHLError:
    text = _error_text(body).lower()
    cls: type[GHLError]
    if status == 400 and ("invalid_grant" in text or "invalid grant" in text):
        cls = InvalidGrantError
    elif status == 400 and "not active" in text:
        cls = LocationInactiveError
    else:
        cls = classify(status, body, headers)
    return cls(status=status, body=body, headers=headers, method=method, path=path)


def _error_text(body: Any) -> str:
    if isinstance(body, Mapping):
        return " ".join(
            str(body.get(field) or "") for field in ("error", "error_description", "message")
        )
    return str(body)


def _either(body: Mapping[str, Any], v2: str, v3: str) -> Any:
    value = body.get(v2)
    return value if value is not None else body.get(v3)


def _required(body: Mapping[str, Any], v2: str, v3: str) -> Any:
    value = _either(body, v2, v3)
    if value is None:
        raise KeyError(v2)
    return value


def _camel(form: Mapping[str, str]) -> dict[str, str]:
    """The v3 token body: GetAccessTokenBodyDto's camelCase names."""
    return {_V3_KEYS.get(key, key): value for key, value in form.items()}


def _with_ids(tokens: TokenSet, company_id: str, location_id: str) -> TokenSet:
    return TokenSet(
        access_token=tokens.access_token,
        refresh_token=tokens.refresh_token,
        expires_at=tokens.expires_at,
        scope=tokens.scope,
        user_type="Location",
        location_id=tokens.location_id or location_id,
        company_id=tokens.company_id or company_id,
        user_id=tokens.user_id,
    )
