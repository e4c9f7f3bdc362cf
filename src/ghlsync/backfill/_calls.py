"""Counting the GHL calls a process spends (for the progress bar and the summary)."""

from __future__ import annotations

from collections.abc import Mapping

from ghlsync.ghl._seams import Budget, RateLimiter

__all__ = ["CountingLimiter"]


class CountingLimiter:
    """A `RateLimiter` that counts every request it lets through (`calls`): each send,
    retries included, acquires once, so this is the number of calls made."""

    def __init__(self, inner: RateLimiter) -> None:
        self._inner = inner
        self.calls = 0

    async def acquire(self, key: str) -> None:
        """Wait for the inner limiter, then count the call."""
        await self._inner.acquire(key)
        self.calls += 1

    async def observe(self, key: str, status: int, headers: Mapping[str, str]) -> None:
        """Pass the answer's rate headers on."""
        await self._inner.observe(key, status, headers)

    async def has_budget(self, key: str) -> bool:
        """As the inner limiter."""
        return await self._inner.has_budget(key)

    async def budget(self, key: str) -> Budget:
        """As the inner limiter."""
        return await self._inner.budget(key)

    async def drain(self) -> None:
        """Let the inner limiter write what it holds back (the GHL client's `aclose`)."""
        drain = getattr(self._inner, "drain", None)
        if drain is not None:
            await drain()
