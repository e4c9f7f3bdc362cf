"""GHL's burst and daily limits per resource, and the `X-RateLimit-*` headers that report them.

The burst limit is a **sliding window**: a request is allowed when fewer than `burst` requests
of the same key were allowed in the last `interval_ms` (a rejected request does not count).
`X-RateLimit-Remaining` is what is left in that window after this request. The daily limit is
a fixed UTC calendar day. GHL documents the limits and headers but not the window kind; the
sliding window is the stricter reading, so a client that passes here passes there.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from ghlsync._clock import Clock
from ghlsync.sandbox._state import Limits


@dataclass(slots=True)
class _Window:
    times: deque[float] = field(default_factory=deque)
    day: int = -1
    day_count: int = 0


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one request against the limits, with the headers to send."""

    allowed: bool
    headers: dict[str, str]


class SlidingWindowLimiter:
    """Counts requests per key; one instance per sandbox."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._windows: dict[str, _Window] = {}

    def reset(self) -> None:
        """Forget all counts."""
        self._windows.clear()

    def take(self, key: str, limits: Limits) -> Decision:
        """Count one request for `key` if it fits; say so and give the headers."""
        window = self._windows.setdefault(key, _Window())
        now = self._clock.monotonic()
        horizon = now - limits.interval_ms / 1000
        while window.times and window.times[0] <= horizon:
            window.times.popleft()
        day = int(self._clock.now() // 86_400)
        if day != window.day:
            window.day, window.day_count = day, 0
        allowed = len(window.times) < limits.burst and window.day_count < limits.daily
        if allowed:
            window.times.append(now)
            window.day_count += 1
        return Decision(allowed, _headers(limits, len(window.times), window.day_count))


def _headers(limits: Limits, used: int, used_today: int) -> dict[str, str]:
    return {
        "X-RateLimit-Max": str(limits.burst),
        "X-RateLimit-Remaining": str(max(0, limits.burst - used)),
        "X-RateLimit-Interval-Milliseconds": str(limits.interval_ms),
        "X-RateLimit-Limit-Daily": str(limits.daily),
        "X-RateLimit-Daily-Remaining": str(max(0, limits.daily - used_today)),
    }
