"""When to try a GHL request again, and how long to wait first. Pure functions, no I/O.

Order of rules in `should_retry` (the server's signals first):

1. 429: retry without counting the attempt (the limiter has paused the key), waiting what the
   rate-limit headers say, up to `max_throttled` times in a row; the daily budget spent
   (`X-RateLimit-Daily-Remaining: 0`) is not retried here — the engine requeues the item.
2. An answer that is not 5xx: never retried here (4xx are the caller's problem; 2xx are done).
3. No answer at all: a connect error means the request never left, so any method is retried.
   A read timeout or a dropped connection after sending is retried only when the request is
   idempotent (GET, PUT, DELETE, or a POST the caller marks idempotent, like upsert or
   search); for other POSTs the outcome is unknown and surfaced as such, never retried blind.
4. 5xx (except 501 and 505, which are final): retried when idempotent, and for POST only on
   503 (GHL did not take the request); 500/502/504 on a create may have created, so they too
   are outcome unknown.
5. Every counted retry stops at `max_attempts`.

Backoff is "full jitter" (AWS architecture blog, "Exponential Backoff and Jitter"): a uniform
draw between `floor` and `min(ceiling, floor * 2**attempt)`. It spreads the retries of many
workers hit by the same outage, which plain exponential backoff would synchronise.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

__all__ = ["ExcKind", "RetryDecision", "backoff", "is_idempotent", "should_retry"]

ExcKind = Literal["connect", "read_timeout", "write_timeout", "pool_timeout", "dropped"]
"""How a request failed without an answer: `connect` and `pool_timeout` never sent anything."""

_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
_NOT_SENT: frozenset[str] = frozenset({"connect", "pool_timeout"})
_PERMANENT_5XX = frozenset({501, 505})  # Not Implemented / HTTP Version: no retry will differ


@dataclass(frozen=True, slots=True)
class RetryDecision:
    """What to do after one attempt."""

    retry: bool
    delay: float = 0.0  # seconds to wait before the next attempt
    counts: bool = True  # whether the next attempt uses up one of `max_attempts`
    outcome_unknown: bool = False  # a write may have happened: resolve by lookup
    reason: str = ""


def is_idempotent(method: str, idempotent: bool | None = None) -> bool:
    """True when sending the request twice has the effect of sending it once."""
    return idempotent if idempotent is not None else method.upper() in _IDEMPOTENT


def should_retry(
    method: str,
    status: int | None,
    exc_kind: ExcKind | None,
    attempt: int,
    max_attempts: int,
    *,
    idempotent: bool | None = None,
    headers: Mapping[str, str] | None = None,
    throttled: int = 0,
    max_throttled: int = 8,
    rng: random.Random | None = None,
) -> RetryDecision:
    """Decide after attempt number `attempt` (1-based) whether and when to try again."""
    safe = is_idempotent(method, idempotent)
    if status == 429:
        return _after_429(headers or {}, attempt, throttled, max_throttled, rng)
    if status is not None and status < 500:
        return RetryDecision(False, reason=f"status {status} is final")
    decision = _after_no_answer(exc_kind, safe) if status is None else _after_5xx(status, safe)
    if decision.retry and attempt >= max_attempts:
        return RetryDecision(False, reason=f"{decision.reason}; gave up after {attempt} attempts")
    if decision.retry:
        return RetryDecision(True, backoff(attempt, rng=rng), reason=decision.reason)
    return decision


def _after_no_answer(exc_kind: ExcKind | None, safe: bool) -> RetryDecision:
    if exc_kind in _NOT_SENT:
        return RetryDecision(True, reason=f"{exc_kind}: request never sent")
    if safe:
        return RetryDecision(True, reason=f"{exc_kind}: idempotent request")
    return RetryDecision(False, outcome_unknown=True, reason=f"{exc_kind} after a write was sent")


def _after_5xx(status: int, safe: bool) -> RetryDecision:
    if status in _PERMANENT_5XX:
        return RetryDecision(False, reason=f"status {status} is final")
    if safe or status == 503:
        return RetryDecision(True, reason=f"server error {status}")
    return RetryDecision(False, outcome_unknown=True, reason=f"server error {status} on a write")


def _after_429(
    headers: Mapping[str, str],
    attempt: int,
    throttled: int,
    max_throttled: int,
    rng: random.Random | None,
) -> RetryDecision:
    lowered = {k.lower(): v for k, v in headers.items()}
    if _int(lowered.get("x-ratelimit-daily-remaining")) == 0:
        return RetryDecision(False, reason="429: daily budget spent")
    if throttled >= max_throttled:
        return RetryDecision(False, reason=f"429: still throttled after {throttled} waits")
    delay = _server_wait(lowered)
    if delay is None:
        delay = backoff(throttled + 1, rng=rng)
    return RetryDecision(True, delay, counts=False, reason="429: over the burst limit")


def _server_wait(headers: Mapping[str, str]) -> float | None:
    """Seconds the server asks us to wait: Retry-After, else one burst window when exhausted."""
    retry_after = _float(headers.get("retry-after"))
    if retry_after is not None:
        return max(0.0, retry_after)
    interval_ms = _int(headers.get("x-ratelimit-interval-milliseconds"))
    if interval_ms is not None and _int(headers.get("x-ratelimit-remaining")) in (0, None):
        return interval_ms / 1000
    return None


def backoff(
    attempt: int,
    floor: float = 0.5,
    ceiling: float = 60.0,
    rng: random.Random | None = None,
) -> float:
    """Full-jitter exponential delay for retry number `attempt` (1-based), in [floor, ceiling]."""
    top = min(ceiling, floor * 2.0 ** max(0, attempt))
    draw = (rng or random).random()
    return floor + draw * max(0.0, top - floor)


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
