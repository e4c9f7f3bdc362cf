"""OAuth 2.0: auto-approving authorization page, token endpoint, location tokens.

Refresh tokens rotate and are single-use: a second use answers 400 `invalid_grant`.
API v3 (`Version: v3`, `apps/v3/oauth-v3.json`): the token endpoint takes a JSON or form
body with camelCase names (`clientId`, `grantType`, `refreshToken`, ...) and answers camelCase
(`accessToken`, `expiresIn`, ...); the agency endpoints are `/oauth/location-token` and
`/oauth/installed-locations` (`{"items", "pagination"}`).

Every call to the token endpoint is counted per grant type and per refresh token presented
(`GET /_sandbox/counters`), so tests can assert "exactly one refresh".
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse

from ghlsync.sandbox._deps import StateDep
from ghlsync.sandbox._errors import SandboxError
from ghlsync.sandbox._records import number_string
from ghlsync.sandbox._state import (
    DEFAULT_APP_ID,
    DEFAULT_LOCATION_ID,
    Grant,
    Principal,
    SandboxState,
    UserType,
)

router = APIRouter()

SCOPES = (
    "contacts.readonly contacts.write calendars.readonly calendars/events.readonly "
    "calendars/events.write locations.readonly locations/customFields.readonly "
    "locations/customFields.write locations/tags.readonly locations/tags.write "
    "locations/tasks.readonly users.readonly businesses.readonly businesses.write oauth.readonly "
    "oauth.write"
)
_TOKEN_FIELDS = {
    "client_id",
    "client_secret",
    "grant_type",
    "code",
    "refresh_token",
    "user_type",
    "redirect_uri",
}
_V3_NAMES = {
    "clientId": "client_id",
    "clientSecret": "client_secret",
    "grantType": "grant_type",
    "code": "code",
    "refreshToken": "refresh_token",
    "userType": "user_type",
    "redirectUri": "redirect_uri",
}
_V3_ANSWER = {
    "access_token": "accessToken",
    "token_type": "tokenType",
    "expires_in": "expiresIn",
    "refresh_token": "refreshToken",
}


@router.get("/oauth/chooselocation")
@router.get("/v2/oauth/chooselocation")
async def choose_location(
    state: StateDep,
    request: Request,
    client_id: str,
    redirect_uri: str,
    response_type: str = "code",
    scope: str = "",
    user_type: UserType = "Location",
    location_id: str = DEFAULT_LOCATION_ID,
) -> RedirectResponse:
    """Approve at once and redirect to `redirect_uri` with `code` (and the caller's `state`).

    `user_type` and `location_id` are sandbox extensions choosing what the "user" approves.
    """
    caller_state = request.query_params.get("state")
    with state.lock:
        client = state.clients.get(client_id)
        if client is None:
            raise SandboxError(400, "Invalid client: client_id is unknown")
        if client.redirect_uris and redirect_uri not in client.redirect_uris:
            raise SandboxError(400, "Invalid redirect_uri")
        if response_type != "code":
            raise SandboxError(400, "Invalid parameter: response_type")
        location = state.location(location_id)
        if location is None:
            raise SandboxError(400, "Location not found")
        code = f"code-{state.new_id(32)}"
        state.codes[code] = Grant(
            client_id,
            user_type,
            location.company_id,
            location.id if user_type == "Location" else None,
            redirect_uri,
        )
    params = {"code": code, **({"state": caller_state} if caller_state is not None else {})}
    joiner = "&" if "?" in redirect_uri else "?"
    del scope  # every sandbox grant has all SCOPES
    return RedirectResponse(f"{redirect_uri}{joiner}{urlencode(params)}", status_code=302)


def _invalid_grant(description: str) -> SandboxError:
    return SandboxError(
        400,
        "Invalid grant: refresh token is invalid",
        error="invalid_grant",
        error_description=description,
    )


def _is_v3(request: Request) -> bool:
    return request.headers.get("version") == "v3"


async def _v3_token_form(request: Request) -> dict[str, str]:
    """A v3 token body (JSON or form, camelCase) as the v2 form names."""
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            raw: Any = await request.json()
        except ValueError:
            raise SandboxError(400, "Invalid JSON body") from None
        if not isinstance(raw, dict):
            raise SandboxError(400, "Invalid JSON body")
        given = {k: str(v) for k, v in raw.items()}
    else:
        given = {k: str(v) for k, v in (await request.form()).items()}
    unknown = sorted(set(given) - set(_V3_NAMES))
    if unknown:
        raise SandboxError(422, [f"property {name} should not exist" for name in unknown])
    missing = [f for f in ("clientId", "clientSecret", "grantType") if not given.get(f)]
    if missing:
        raise SandboxError(400, f"Missing parameter: {missing[0]}")
    return {_V3_NAMES[k]: v for k, v in given.items()}


def _camel_answer(body: dict[str, Any]) -> dict[str, Any]:
    return {_V3_ANSWER.get(k, k): v for k, v in body.items()}


@router.post("/oauth/token")
async def token(state: StateDep, request: Request) -> dict[str, Any]:
    """Exchange an authorization code or a refresh token for tokens (v2: snake_case form)."""
    if _is_v3(request):
        return _camel_answer(_token(state, await _v3_token_form(request)))
    form = {k: str(v) for k, v in (await request.form()).items()}
    return _token(state, form)


def _token(state: SandboxState, form: dict[str, str]) -> dict[str, Any]:
    unknown = sorted(set(form) - _TOKEN_FIELDS)
    if unknown:
        raise SandboxError(422, [f"property {name} should not exist" for name in unknown])
    missing = [f for f in ("client_id", "client_secret", "grant_type") if not form.get(f)]
    if missing:
        raise SandboxError(400, f"Missing parameter: {missing[0]}")
    grant_type = form["grant_type"]
    with state.lock:
        state.token_calls[grant_type] += 1
        client = state.clients.get(form["client_id"])
        if client is None or client.client_secret != form["client_secret"]:
            raise SandboxError(401, "Invalid client credentials", error="invalid_client")
        grant = _take_grant(state, grant_type, form)
        user_type: UserType = "Company" if form.get("user_type") == "Company" else grant.user_type
        return _issue(state, grant, user_type)


def _take_grant(state: SandboxState, grant_type: str, form: dict[str, str]) -> Grant:
    """The grant behind a code or refresh token, marked used (each is single-use)."""
    if grant_type == "authorization_code":
        grant = state.codes.get(form.get("code", ""))
        if grant is None or grant.used:
            raise SandboxError(
                400, "Invalid grant: authorization code is invalid", error="invalid_grant"
            )
        if form.get("redirect_uri") and form["redirect_uri"] != grant.redirect_uri:
            raise SandboxError(400, "Invalid grant: redirect_uri mismatch", error="invalid_grant")
    elif grant_type == "refresh_token":
        presented = form.get("refresh_token", "")
        state.refresh_uses[presented] += 1
        grant = state.refresh_tokens.get(presented)
        if grant is None or grant.used:
            raise _invalid_grant("This refresh token is invalid, expired or has already been used")
    else:
        raise SandboxError(400, "Invalid parameter: grant_type")
    if grant.client_id != form["client_id"]:
        raise SandboxError(400, "Invalid grant: issued to another client", error="invalid_grant")
    grant.used = True
    return grant


def _issue(state: SandboxState, grant: Grant, user_type: UserType) -> dict[str, Any]:
    location_id = grant.location_id if user_type == "Location" else None
    if user_type == "Location" and location_id is None:
        raise SandboxError(400, "Invalid parameter: user_type")
    access = f"at-{state.new_id(40)}"
    refresh = f"rt-{state.new_id(40)}"
    expires = state.clock.now() + state.token_ttl
    state.tokens[access] = Principal(
        access, user_type, grant.company_id, location_id, "oauth", expires
    )
    state.refresh_tokens[refresh] = Grant(grant.client_id, user_type, grant.company_id, location_id)
    body: dict[str, Any] = {
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": state.token_ttl,
        "refresh_token": refresh,
        "scope": SCOPES,
        "userType": user_type,
        "companyId": grant.company_id,
        "userId": _user_of(state, location_id),
        "isBulkInstallation": False,
    }
    if location_id:
        body["locationId"] = location_id
    else:
        body["approvedLocations"] = [
            loc.id for loc in state.locations.values() if loc.company_id == grant.company_id
        ]
        body.update(installToFutureLocations=True, approveAllLocations=True)
    return body


def _user_of(state: SandboxState, location_id: str | None) -> str:
    location = state.location(location_id or DEFAULT_LOCATION_ID)
    return next(iter(location.users)) if location else "usr_sandbox"


@router.post("/oauth/location-token")
async def location_token_v3(state: StateDep, request: Request) -> dict[str, Any]:
    """v3's location token: camelCase, with a refresh token for the location."""
    body = _camel_answer(await location_token(state, request))
    with state.lock:
        refresh = f"rt-{state.new_id(40)}"
        # The company token names no app; the sandbox's first OAuth client stands for it.
        client_id = next(iter(state.clients), "sandbox-client")
        company_id = request.state.principal.company_id
        state.refresh_tokens[refresh] = Grant(client_id, "Location", company_id, body["locationId"])
    body["refreshToken"] = refresh
    return body


@router.post("/oauth/locationToken")
async def location_token(state: StateDep, request: Request) -> dict[str, Any]:
    """A location access token minted from a company token (form: companyId, locationId)."""
    principal: Principal = request.state.principal
    form = {k: str(v) for k, v in (await request.form()).items()}
    missing = [f"{f} should not be empty" for f in ("companyId", "locationId") if not form.get(f)]
    if missing:
        raise SandboxError(422, missing)
    with state.lock:
        location = state.location(form["locationId"])
        if (
            form["companyId"] != principal.company_id
            or location is None
            or location.company_id != principal.company_id
        ):
            raise SandboxError(400, "Location not found for this company")
        access = f"at-{state.new_id(40)}"
        expires = state.clock.now() + state.token_ttl
        state.tokens[access] = Principal(
            access, "Location", location.company_id, location.id, "oauth", expires
        )
        return {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": state.token_ttl,
            "scope": SCOPES,
            "locationId": location.id,
            "userId": next(iter(location.users)),
            "appId": DEFAULT_APP_ID,
            "versionId": DEFAULT_APP_ID,
        }


@router.get("/oauth/installedLocations")
async def installed_locations(
    state: StateDep,
    request: Request,
    companyId: str,
    appId: str,
    skip: str = "0",
    limit: str = "20",
) -> dict[str, Any]:
    """The company's locations the app is installed on (all of them, in the sandbox)."""
    principal: Principal = request.state.principal
    if companyId != principal.company_id:
        raise SandboxError(400, "Company not found")
    del appId
    first, count = number_string("skip", skip), number_string("limit", limit)
    with state.lock:
        found = [loc for loc in state.locations.values() if loc.company_id == companyId]
        page = found[first : first + count]
        locations = [
            {"_id": loc.id, "name": loc.name, "address": "", "isInstalled": True} for loc in page
        ]
        return {"locations": locations, "count": len(found), "installToFutureLocations": True}


@router.get("/oauth/installed-locations")
async def installed_locations_v3(
    state: StateDep,
    request: Request,
    companyId: str,
    appId: str,
    pageSize: str = "20",
    pageToken: str = "0",
) -> dict[str, Any]:
    """v3's installed locations: `items` and AIP-158 `pagination` (the token is an offset)."""
    v2 = await installed_locations(state, request, companyId, appId, pageToken, pageSize)
    first, size = number_string("pageToken", pageToken), len(v2["locations"])
    pagination: dict[str, Any] = {
        "totalRecords": v2["count"],
        "hasNextPage": first + size < v2["count"],
        "hasPrevPage": first > 0,
        "currentPageSize": size,
    }
    if pagination["hasNextPage"]:
        pagination["nextPageToken"] = str(first + size)
    return {"items": v2["locations"], "pagination": pagination, "installToFutureLocations": True}
