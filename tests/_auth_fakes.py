"""A fake GHL token endpoint behind `httpx2.MockTransport`, for auth tests that need no server.

It behaves as GHL does for what the vault relies on: refresh tokens rotate and are single-use
(a second use answers 400 invalid_grant), and every call is counted.
"""

from __future__ import annotations

import itertools
import json
from urllib.parse import parse_qsl

import httpx2

CLIENT_ID = "client-1"
CLIENT_SECRET = "client-secret-value-1234"


class FakeTokenEndpoint:
    """`POST /oauth/token` with rotating single-use refresh tokens."""

    def __init__(self, expires_in: int = 86399) -> None:
        self.expires_in = expires_in
        self.valid_refresh: set[str] = set()
        self.calls: list[dict[str, str]] = []
        self.answer: tuple[int, dict[str, object]] | None = None  # forced next answer
        self._ids = itertools.count(1)

    def issue(self) -> tuple[str, str]:
        """A fresh (access, refresh) pair that the endpoint will honour."""
        n = next(self._ids)
        access, refresh = f"access-token-{n:04d}-abcdefgh", f"refresh-token-{n:04d}-abcdefgh"
        self.valid_refresh.add(refresh)
        return access, refresh

    def transport(self) -> httpx2.MockTransport:
        return httpx2.MockTransport(self.handle)

    def handle(self, request: httpx2.Request) -> httpx2.Response:
        form = dict(parse_qsl(request.content.decode()))
        self.calls.append(form)
        if self.answer is not None:
            status, body = self.answer
            return httpx2.Response(status, content=json.dumps(body).encode())
        if form.get("grant_type") == "refresh_token":
            presented = form.get("refresh_token", "")
            if presented not in self.valid_refresh:
                return _invalid_grant()
            self.valid_refresh.discard(presented)
        access, refresh = self.issue()
        body = {
            "access_token": access,
            "refresh_token": refresh,
            "expires_in": self.expires_in,
            "token_type": "Bearer",
            "scope": "contacts.readonly contacts.write",
            "userType": form.get("user_type", "Location"),
            "locationId": "loc_1",
            "companyId": "comp_1",
            "userId": "usr_1",
        }
        return httpx2.Response(200, json=body)


def _invalid_grant() -> httpx2.Response:
    body = {
        "statusCode": 400,
        "error": "invalid_grant",
        "message": "Invalid grant: refresh token is invalid",
    }
    return httpx2.Response(400, json=body)
