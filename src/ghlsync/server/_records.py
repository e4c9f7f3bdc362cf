"""`GET /api/records/{query}`: the unified record as JSON (what `ghlsync record --json` prints).

A person's record is personal data, so the route only answers with `server.admin_token`
configured and sent as `Authorization: Bearer <token>`: 401 without or with a wrong token,
403 when no token is configured at all. 200 with `{query, matches, record}` (`record` is null
when several people match: they are listed, not guessed), 404 when no one matches.
Store only; the console never spends the GHL rate budget through it.
"""

from __future__ import annotations

import sqlalchemy as sa
from starlette.requests import Request
from starlette.responses import Response

from ghlsync._secret import Secret
from ghlsync.mapping import AppConfig
from ghlsync.records import lookup
from ghlsync.server._probes import AdminGate
from ghlsync.server._responses import Rejection, json_response

__all__ = ["RecordsApi"]


class RecordsApi:
    """The records route over one store."""

    def __init__(self, engine: sa.Engine, config: AppConfig, token: Secret | None) -> None:
        self._engine = engine
        self._config = config
        self._enabled = token is not None
        self._gate = AdminGate(token)

    async def handle(self, request: Request) -> Response:
        """Answer one lookup (see the module docstring)."""
        try:
            self._check(request)
        except Rejection as exc:
            return exc.response()
        query = str(request.path_params["query"])
        result = await lookup(self._engine, self._config, query)
        if not result.matches:
            return json_response(
                404,
                {
                    "error": "not_found",
                    "message": f"no one in the store matches {query!r}",
                    "query": query,
                },
            )
        return json_response(200, result.to_dict())

    def _check(self, request: Request) -> None:
        if not self._enabled:
            raise Rejection(
                403, "disabled", "set server.admin_token to use /api/records (personal data)"
            )
        if not self._gate.allows(request):
            raise Rejection(401, "unauthorized", "send Authorization: Bearer <admin token>")
