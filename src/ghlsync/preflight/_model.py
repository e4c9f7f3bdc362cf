"""What a preflight check sees (`Preflight`) and what it says (`CheckLine`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from ghlsync.ghl._client import GHLClient
from ghlsync.ghl._errors import GHLError
from ghlsync.mapping import AppConfig

__all__ = ["Check", "CheckLine", "Preflight", "failed", "passed"]


@dataclass(frozen=True, slots=True)
class CheckLine:
    """One line of `ghlsync check`: what was checked, whether it holds, and the fix if not."""

    check: str
    ok: bool
    message: str
    fix: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (`ghlsync check --json`)."""
        return {"check": self.check, "ok": self.ok, "message": self.message, "fix": self.fix}


def passed(check: str, message: str) -> CheckLine:
    """A line that holds."""
    return CheckLine(check, True, message)


def failed(check: str, message: str, fix: str) -> CheckLine:
    """A line that does not hold, with what to do about it."""
    return CheckLine(check, False, message, fix)


@dataclass
class Preflight:
    """The environment under check: its config, a GHL client for its location, and answers
    already fetched (each GHL list is read once, however many checks look at it)."""

    config: AppConfig
    client: GHLClient | None
    location_id: str | None
    scopes: str | None = None  # the stored OAuth scopes, when the token came from the vault
    sandbox: bool = False  # the GHL under check is a ghlsync sandbox: test writes are harmless
    engine: sa.Engine | None = None  # a throwaway store for the test writes and the dry run
    answers: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, GHLError] = field(default_factory=dict)

    async def read(self, operation: str, **path: str) -> Any:
        """GHL's answer to one read of the location (cached; raises the client's error)."""
        key = operation + repr(sorted(path.items()))
        if key in self.errors:
            raise self.errors[key]
        if key not in self.answers:
            assert self.client is not None and self.location_id is not None
            try:
                self.answers[key] = await self.client.call(
                    operation, key=self.location_id, path_params=path, params=self._query(operation)
                )
            except GHLError as error:
                self.errors[key] = error
                raise
        return self.answers[key]

    def _query(self, operation: str) -> dict[str, str]:
        from ghlsync.ghl._operations import OPERATIONS

        op = OPERATIONS[operation]
        query = {"locationId": self.location_id or ""} if op.location_query else {}
        return {**query, "limit": "1"} if operation == "get-contacts" else query


Check = Callable[[Preflight], Awaitable[list[CheckLine]]]
"""One check: reads what it needs through `Preflight`, returns its lines (none: not relevant)."""
