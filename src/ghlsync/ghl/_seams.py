"""The two seams the GHL client depends on: where tokens come from, and when a call may go.

Implementations: `StaticTokens` (Private Integration tokens) and `TokenVault` (OAuth, stored
encrypted, refreshed single-flight) for tokens; `MemoryRateLimiter` (one process) and
`SqlRateLimiter` (budget shared through the database) for pacing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from ghlsync._secret import Secret


class TokenSource(Protocol):
    """Hands out access tokens per resource key (a location id, or a company id)."""

    async def token(self, key: str) -> Secret:
        """A token believed valid now (refreshed proactively when close to expiry)."""
        ...

    async def after_unauthorized(self, key: str, rejected: Secret) -> Secret | None:
        """GHL answered 401 to `rejected`: refresh once and return the new token, or None."""
        ...


@dataclass(frozen=True, slots=True)
class Budget:
    """What a limiter knows about one key, for status displays and claim decisions."""

    key: str
    max: int  # requests per interval, as GHL's X-RateLimit-Max says
    interval_ms: int
    remaining: int | None  # X-RateLimit-Remaining as last seen
    daily_limit: int
    daily_remaining: int | None
    paused_until: float  # epoch seconds; 0 when not paused
    throttled: int  # 429s seen
    daily_pace: int | None = None  # requests per interval while on daily-budget pacing


class RateLimiter(Protocol):
    """Paces calls per key (location or company) from GHL's own rate-limit headers."""

    async def acquire(self, key: str) -> None:
        """Wait until one more request for `key` fits the budget, then take it."""
        ...

    async def observe(self, key: str, status: int, headers: Mapping[str, str]) -> None:
        """Learn from a response: adapt to X-RateLimit-* headers; on 429 pause the key."""
        ...

    async def has_budget(self, key: str) -> bool:
        """True when a request for `key` could go now (not paused, daily reserve left)."""
        ...

    async def budget(self, key: str) -> Budget: ...
