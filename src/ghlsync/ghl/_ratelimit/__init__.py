"""Rate limiting per GHL resource key: one pacing policy, kept in memory or in the database.

`MemoryRateLimiter` paces the keys of one process; `SqlRateLimiter` keeps each key's budget in
the `rate_budget` table so several processes sharing a location stay under its limit together.
Both implement `ghlsync.ghl._seams.RateLimiter`; the math lives in `_policy` (see its docs).
"""

from ghlsync.ghl._ratelimit._memory import MemoryRateLimiter
from ghlsync.ghl._ratelimit._policy import LimitState, Policy, RateHeaders
from ghlsync.ghl._ratelimit._sql import SqlRateLimiter

__all__ = ["LimitState", "MemoryRateLimiter", "Policy", "RateHeaders", "SqlRateLimiter"]
