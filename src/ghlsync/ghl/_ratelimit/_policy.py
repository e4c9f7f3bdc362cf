"""The pacing policy both limiters share: pure functions over one key's `LimitState`.

Pacing is GCRA (the "generic cell rate algorithm", a token bucket kept as one number): each
request moves the key's *theoretical arrival time* `tat` on by one emission interval `e`; a
request may go when `now >= tat - tau`, where the tolerance `tau` is the small burst allowed.

Why these numbers. GHL does not say whether its window is fixed or sliding; the sandbox uses
a sliding window, the stricter reading (a sender safe under it is safe under a fixed window,
whose windows are a subset of the sliding ones). Under GCRA, the most requests any window of
length `I` can hold is `floor((I + tau) / e) + 1` (the idle-to-busy transition; a steady
backlog holds `ceil(I / e)`). We pace at `rate = min(max * safety, max - 1)` per interval and
cap `tau`, plus the catch-up allowed to late wakers (`try_take`), at `(max - 1) * e - I`, so a
window never holds more than `max` of our requests even when network jitter squeezes requests
together by up to one emission interval. With the defaults (`safety=0.98`) a backlog drains
at 98% of the advertised limit. A larger burst (say 20) on
top of full-rate pacing would overfill a sliding window; it has to be paid for by pacing
further below the limit, which the 97% target does not leave room for.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

DEFAULT_MAX = 100
DEFAULT_INTERVAL_MS = 10_000
DEFAULT_DAILY_LIMIT = 200_000


@dataclass(slots=True)
class LimitState:
    """Everything a limiter keeps for one key; times in milliseconds on the limiter's clock."""

    key: str
    max: int = DEFAULT_MAX
    interval_ms: int = DEFAULT_INTERVAL_MS
    daily_limit: int = DEFAULT_DAILY_LIMIT
    tat_ms: float = 0.0
    paused_until_ms: float = 0.0
    remaining: int | None = None
    daily_remaining: int | None = None
    throttled: int = 0
    consecutive_429: int = 0
    touched_ms: float = 0.0  # the last take or response: how fresh `daily_remaining` is


@dataclass(frozen=True, slots=True)
class Pacing:
    """The emission interval and burst tolerance derived from a key's advertised limit."""

    emission_ms: float
    tolerance_ms: float
    catch_up_ms: float = 0.0  # how late a queued request may be and still keep its slot

    def window_bound(self, interval_ms: int) -> int:
        """The most of our requests any window of `interval_ms` can hold."""
        return math.floor((interval_ms + self.tolerance_ms) / self.emission_ms) + 1


@dataclass(frozen=True, slots=True)
class Policy:
    """Tunable knobs; the defaults meet "≥ 97% of the limit, zero 429s" (see module doc)."""

    safety: float = 0.98  # fraction of the advertised rate we pace at
    burst: float = 0.5  # tolerance, in emission intervals (capped, see module doc)
    daily_reserve: int = 2_000  # has_budget() is False at or below this many left today
    max_pause_ms: float = 300_000.0  # the longest 429 pause before jitter
    jitter: float = 0.1  # 429 pauses are stretched by up to this fraction, at random
    daily_probe_ms: float = 300_000.0  # a spent day is probed again after this long quiet
    resolution_ms: float = 0.0  # 1 for integer-ms storage (SQL); 0 keeps full precision

    def pacing(self, max_requests: int, interval_ms: int) -> Pacing:
        """Emission interval and tolerance for `max_requests` per `interval_ms`."""
        limit = max(1, max_requests)
        rate = min(limit * self.safety, limit - 1) if limit >= 2 else limit * self.safety
        emission = self._quantize(interval_ms / rate, interval_ms, limit)
        ceiling = max(0.0, (limit - 1) * emission - interval_ms)
        tolerance = min(self.burst * emission, ceiling)
        if self.resolution_ms:
            tolerance = math.floor(tolerance / self.resolution_ms) * self.resolution_ms
        return Pacing(emission, tolerance, ceiling - tolerance)

    def _quantize(self, emission: float, interval_ms: int, limit: int) -> float:
        # Round down only while the rate stays at most `limit - 1` per interval; else round up.
        step = self.resolution_ms
        if not step:
            return emission
        down = math.floor(emission / step) * step
        if down > 0 and interval_ms / down <= max(1, limit - 1):
            return down
        return math.ceil(emission / step) * step


def try_take(
    policy: Policy, state: LimitState, now_ms: float, slot_ms: float | None = None
) -> float:
    """Take one request if it conforms (returns 0.0), else return how long to wait (ms).

    `slot_ms` is when a queued caller was told to come back. If it wakes late, it keeps its
    slot (up to `catch_up_ms` late) instead of pushing the whole schedule back: a busy event
    loop must not turn into lost throughput.
    """
    pacing = policy.pacing(state.max, state.interval_ms)
    at = effective_now(pacing, now_ms, slot_ms)
    if wait_ms(policy, state, at) > 0:
        at = now_ms  # the schedule moved meanwhile (a pause, new limits): no credit
    wait = wait_ms(policy, state, at)
    if wait > 0:
        return wait
    state.tat_ms = max(state.tat_ms, at) + pacing.emission_ms
    state.touched_ms = now_ms
    if state.daily_remaining is not None:
        state.daily_remaining -= 1
    return 0.0


def effective_now(pacing: Pacing, now_ms: float, slot_ms: float | None) -> float:
    """The time a take counts at: the caller's slot if it woke late, within the catch-up."""
    if slot_ms is None or now_ms <= slot_ms:
        return now_ms
    return max(slot_ms, now_ms - pacing.catch_up_ms)


def wait_ms(policy: Policy, state: LimitState, now_ms: float) -> float:
    """Milliseconds until a request for this key would conform (0.0 when it would now)."""
    pacing = policy.pacing(state.max, state.interval_ms)
    until_paced = state.tat_ms - pacing.tolerance_ms - now_ms
    until_resumed = state.paused_until_ms - now_ms
    return max(0.0, until_paced, until_resumed)


def has_budget(policy: Policy, state: LimitState, now_ms: float) -> bool:
    """Not paused, and the daily budget (as GHL last reported it) is above the reserve.

    At or below the reserve, claimers stop, so no request goes out and no header could ever
    tell us the day has reset (GHL does not say when it does). So a count nobody has taken
    from or refreshed for `daily_probe_ms` is stale: the key has budget again, for one claim.
    That claim's first take touches the key, which closes the door until the answer's
    headers either lift the count (the day reset) or confirm it (wait another probe period).
    """
    if state.paused_until_ms > now_ms:
        return False
    if state.daily_remaining is None or state.daily_remaining > policy.daily_reserve:
        return True
    return now_ms - state.touched_ms >= policy.daily_probe_ms


def observe(
    policy: Policy,
    state: LimitState,
    now_ms: float,
    status: int,
    headers: Mapping[str, str],
    rng: random.Random,
    wall_now: float,
) -> None:
    """Learn from one response: adopt the advertised limits, then react to the status.

    `wall_now` (epoch seconds) is only for reading a Retry-After given as an HTTP-date.
    """
    seen = RateHeaders.parse(headers, wall_now)
    before = policy.pacing(state.max, state.interval_ms)
    state.touched_ms = now_ms
    adopt(state, seen)
    rescale_backlog(policy, state, now_ms, before)
    if status == 429:
        pause_for_429(policy, state, now_ms, seen.retry_after_ms, rng)
        return
    if 200 <= status < 300:
        state.consecutive_429 = 0
    correct_from_remaining(policy, state, now_ms)
    pause_if_daily_spent(policy, state, now_ms)


def adopt(state: LimitState, seen: RateHeaders) -> None:
    """Take GHL's advertised numbers over our defaults (limits differ per app and location)."""
    if seen.max is not None and seen.max > 0:
        state.max = seen.max
    if seen.interval_ms is not None and seen.interval_ms > 0:
        state.interval_ms = seen.interval_ms
    if seen.daily_limit is not None and seen.daily_limit > 0:
        state.daily_limit = seen.daily_limit
    if seen.remaining is not None:
        state.remaining = seen.remaining
    if seen.daily_remaining is not None:
        state.daily_remaining = seen.daily_remaining


def rescale_backlog(policy: Policy, state: LimitState, now_ms: float, before: Pacing) -> None:
    """Re-express the requests already scheduled ahead of now at the newly learnt pace.

    `tat - now` is a number of requests times the old emission interval; without this, the
    first response of a key whose real limit beats the default would leave it idling through
    a backlog computed at the default pace.
    """
    after = policy.pacing(state.max, state.interval_ms)
    if after.emission_ms == before.emission_ms or state.tat_ms <= now_ms:
        return
    scheduled = (state.tat_ms - now_ms) / before.emission_ms
    state.tat_ms = now_ms + scheduled * after.emission_ms


def correct_from_remaining(policy: Policy, state: LimitState, now_ms: float) -> None:
    """Hold back when GHL says fewer requests remain than our own pacing can explain.

    Alone, our pacing leaves at least `max - window_bound` requests in any window, so a lower
    `X-RateLimit-Remaining` means the window holds requests our schedule does not know about
    (ours squeezed together in transit, or another app, token or process on this budget).
    Under a sliding window one old request ages out per emission interval, so we let
    `shortfall` more intervals pass than a caught-up schedule would. Taking `max` with the
    schedule makes repeated reports of the same shortfall idempotent. Sitting out a whole
    interval instead would cost more than the 429 it is meant to avoid.
    """
    if state.remaining is None:
        return
    pacing = policy.pacing(state.max, state.interval_ms)
    shortfall = state.max - pacing.window_bound(state.interval_ms) - state.remaining
    if shortfall > 0:
        floor = now_ms + pacing.tolerance_ms + shortfall * pacing.emission_ms
        state.tat_ms = max(state.tat_ms, floor)


def pause_if_daily_spent(policy: Policy, state: LimitState, now_ms: float) -> None:
    """At zero left for the day, pause the key and probe again later (reset time unknown)."""
    if state.daily_remaining is not None and state.daily_remaining <= 0:
        state.paused_until_ms = max(state.paused_until_ms, now_ms + policy.daily_probe_ms)


def pause_for_429(
    policy: Policy,
    state: LimitState,
    now_ms: float,
    retry_after_ms: float | None,
    rng: random.Random,
) -> None:
    """Pause this key for the interval (or Retry-After) plus jitter, doubling while 429s repeat.

    429s answered to requests sent before the current pause began are one event, not a
    streak: they count in `throttled` but do not lengthen the pause.
    """
    state.throttled += 1
    if state.consecutive_429 and now_ms < state.paused_until_ms:
        return
    state.consecutive_429 += 1
    base = min(policy.max_pause_ms, state.interval_ms * 2.0 ** (state.consecutive_429 - 1))
    base = max(base, retry_after_ms or 0.0)
    pause = base * (1.0 + rng.uniform(0.0, policy.jitter))
    state.paused_until_ms = max(state.paused_until_ms, now_ms + pause)
    # Resume at the paced rate without a burst: the server's window state is unknown.
    state.tat_ms = max(state.tat_ms, state.paused_until_ms)


@dataclass(frozen=True, slots=True)
class RateHeaders:
    """The X-RateLimit-* (and Retry-After) values of one response; None when absent."""

    max: int | None = None
    interval_ms: int | None = None
    remaining: int | None = None
    daily_limit: int | None = None
    daily_remaining: int | None = None
    retry_after_ms: float | None = None

    @classmethod
    def parse(cls, headers: Mapping[str, str], wall_now: float) -> RateHeaders:
        """Read the headers case-insensitively; malformed values count as absent."""
        low = {k.lower(): v for k, v in headers.items()}
        return cls(
            max=_int(low.get("x-ratelimit-max")),
            interval_ms=_int(low.get("x-ratelimit-interval-milliseconds")),
            remaining=_int(low.get("x-ratelimit-remaining")),
            daily_limit=_int(low.get("x-ratelimit-limit-daily")),
            daily_remaining=_int(low.get("x-ratelimit-daily-remaining")),
            retry_after_ms=_retry_after_ms(low.get("retry-after"), wall_now),
        )


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value.strip())
    except ValueError:
        return None


def _retry_after_ms(value: str | None, wall_now: float) -> float | None:
    """Retry-After as delta-seconds or an HTTP-date (RFC 9110 §10.2.3), in milliseconds."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value) * 1000.0
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when.timestamp() - wall_now) * 1000.0)
