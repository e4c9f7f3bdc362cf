"""The pacing policy both limiters share: a mirror of GHL's window, kept as slots.

GHL allows `max` requests per `interval_ms` (X-RateLimit-Max / -Interval-Milliseconds) and
does not say whether the window is fixed or sliding. A sliding window is the stricter reading
(every fixed window is one of the sliding ones), and it is exact to mirror: at most `max`
requests in any `interval_ms` means the k-th request may go once the (k − max)-th has aged
out. So a key has `max` *slots*. Taking a request takes a free slot; the slot is in flight
until the response comes back, then free again `interval_ms` after that moment. GHL counted
the request somewhere between our send and its answer, so "answer + interval" is never early,
whatever the network did; and a fresh window gives the whole burst at once: N requests take
`ceil(N / max) − 1` intervals plus the answers' round trips, the least the limit permits.

Until a key's first answer tells us its limit, one request goes at a time (the default limit
is a guess; a burst at the guess could overfill a smaller real window).

Corrections from the headers: `X-RateLimit-Remaining` lower than our own busy slots explain
means someone else spends this budget (another token or process we do not know of): that many
free slots are held for one interval. A 429 pauses the key until the window it reports can
reopen: when our oldest counted request ages out, or a whole interval when we hold none (or
after a second 429 in a row); a longer `Retry-After` wins. 2xx ends a streak.

Daily budget: `X-RateLimit-Daily-Remaining` is kept; claimers (`has_budget`) stop at the
reserve, and *daily-budget pacing* (`daily_pace`) spreads what is left over the time to the
next UTC midnight (the sandbox's day; GHL does not document its reset) once a backlog has run
well ahead of spending the day evenly, so it never leaves live traffic without budget.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime

DEFAULT_MAX = 100
DEFAULT_INTERVAL_MS = 10_000
DEFAULT_DAILY_LIMIT = 200_000
DAY_MS = 86_400_000
MAX_SLOTS = 1_000  # above this limit, each slot stands for a share of the window (`reuse_ms`)


@dataclass(slots=True)
class LimitState:
    """Everything a limiter keeps for one key; times in milliseconds on the limiter's clock."""

    key: str
    max: int = DEFAULT_MAX
    interval_ms: int = DEFAULT_INTERVAL_MS
    daily_limit: int = DEFAULT_DAILY_LIMIT
    paused_until_ms: float = 0.0
    remaining: int | None = None  # None until a response: the limit is not yet learnt
    daily_remaining: int | None = None
    throttled: int = 0
    consecutive_429: int = 0
    touched_ms: float = 0.0  # the last take or response: how fresh `daily_remaining` is
    free_at: list[float] = field(default_factory=list)  # per slot: may be taken from then
    taken_at: list[float] = field(default_factory=list)  # per slot: when it was last taken
    in_flight: deque[tuple[int, float]] = field(default_factory=deque)  # (slot, sent) unanswered

    @property
    def learned(self) -> bool:
        """A response's headers have said this key's limit."""
        return self.remaining is not None


@dataclass(frozen=True, slots=True)
class Policy:
    """Tunable knobs."""

    daily_reserve: int = 2_000  # has_budget() is False at or below this many left today
    max_pause_ms: float = 300_000.0  # the longest 429 pause (a Retry-After beyond is capped)
    daily_probe_ms: float = 300_000.0  # a spent day is probed again after this long quiet
    hold_ms: float = 120_000.0  # a slot whose answer never comes is free again after this
    # The SQL limiter holds an in-flight slot only this long past one interval after its take,
    # renewing it while the request is in flight (up to `hold_ms`): a killed process's slots
    # are free again an interval and a lease after its last renewal, not `hold_ms` after.
    lease_ms: float = 5_000.0
    margin_ms: float = 1.0  # added to "answer + interval": clock rounding never makes it early
    daily_pacing: bool = True  # spread the day's budget when a backlog runs ahead of the day
    daily_headroom: float = 0.1  # share of the daily limit a backlog may run ahead at full speed

    def cap(self, state: LimitState) -> int:
        """How many slots the key may use: its limit once learnt, else one at a time."""
        return slot_count(state.max) if state.learned else 1


def slot_count(max_requests: int) -> int:
    """Slots mirroring a window of `max_requests` (one each, up to MAX_SLOTS)."""
    return min(max(1, max_requests), MAX_SLOTS)


def reuse_ms(state: LimitState) -> float:
    """How long after its answer a slot is free again: the interval, or with more requests
    per window than slots, the share that keeps any window at `max` (S slots, each used at
    most `max / S` times per interval)."""
    return window_share_ms(state.max, state.interval_ms)


def window_share_ms(max_requests: int, interval_ms: int) -> float:
    """`reuse_ms` of a key whose window allows `max_requests` per `interval_ms`."""
    slots = slot_count(max_requests)
    if max_requests <= slots:
        return float(interval_ms)
    return interval_ms * slots / (max_requests - slots)


def try_take(policy: Policy, state: LimitState, now_ms: float) -> float:
    """Take a slot if one is free (returns 0.0), else how long to wait (ms; inf: in flight)."""
    if state.paused_until_ms > now_ms:
        return state.paused_until_ms - now_ms
    cap = policy.cap(state)
    ensure_slots(state, cap)
    slots = state.free_at
    flying = {slot for slot, _ in state.in_flight}
    best = -1
    soonest = math.inf
    for i in range(cap):
        at = slots[i]
        if at <= now_ms:
            best = i
            break
        if i not in flying and at < soonest:
            soonest = at
    if best < 0:
        return soonest - now_ms if soonest < math.inf else math.inf
    slots[best] = now_ms + policy.hold_ms
    state.taken_at[best] = now_ms
    state.in_flight.append((best, now_ms))
    state.touched_ms = now_ms
    if state.daily_remaining is not None:
        state.daily_remaining -= 1
    return 0.0


def ensure_slots(state: LimitState, count: int) -> None:
    """Grow the slot lists to `count` (new slots are free)."""
    if len(state.free_at) < count:
        state.free_at.extend([0.0] * (count - len(state.free_at)))
        state.taken_at.extend([0.0] * (count - len(state.taken_at)))


def release(policy: Policy, state: LimitState, now_ms: float) -> float | None:
    """An answer came (or the send failed): the oldest in-flight slot frees an interval on.
    Returns when that request was sent (None when nothing was in flight)."""
    if not state.in_flight:
        return None
    slot, sent = state.in_flight.popleft()
    state.free_at[slot] = now_ms + reuse_ms(state) + policy.margin_ms
    return sent


def ours_since(state: LimitState, sent_ms: float) -> int:
    """An upper bound on our requests GHL counted when a request sent at `sent_ms` arrived.

    Ours in its window are still busy (a slot frees only an interval after its answer, so
    after the arrival), or their slot was taken again since `sent_ms` (one each): slots busy
    since `sent_ms` plus slots taken since, counting a retaken slot twice.
    """
    busy = sum(1 for at in state.free_at if at > sent_ms)
    return busy + sum(1 for at in state.taken_at if at > sent_ms)


def busy(state: LimitState, now_ms: float) -> int:
    """Slots not free now (in flight, or answered less than an interval ago)."""
    return sum(1 for at in state.free_at if at > now_ms)


def observe(
    policy: Policy,
    state: LimitState,
    now_ms: float,
    status: int,
    headers: Mapping[str, str],
    wall_now: float,
) -> None:
    """Learn from one response (status 0: the send failed, no answer): free its slot, adopt the
    advertised limits, react to the status. `wall_now` (epoch s) reads an HTTP-date Retry-After."""
    seen = RateHeaders.parse(headers, wall_now)
    oldest = _oldest_counted(state, now_ms)
    adopt(state, seen)
    sent = release(policy, state, now_ms)
    state.touched_ms = now_ms
    if status == 429:
        pause_for_429(policy, state, now_ms, oldest, seen.retry_after_ms)
        return
    if 200 <= status < 300:
        state.consecutive_429 = 0
    if seen.remaining is not None and sent is not None and state.max <= MAX_SLOTS:
        ours = ours_since(state, sent)
        hold_foreign(state, now_ms, foreign_requests(state, seen.remaining, ours))
    pause_if_daily_spent(policy, state, now_ms)


def _oldest_counted(state: LimitState, now_ms: float) -> float | None:
    flying = {slot for slot, _ in state.in_flight}
    answered = [at for i, at in enumerate(state.free_at) if at > now_ms and i not in flying]
    return min(answered) if answered else None


def adopt(state: LimitState, seen: RateHeaders) -> None:
    """Take GHL's advertised numbers over our defaults (limits differ per app and location)."""
    if seen.max is not None and seen.max > 0:
        state.max = seen.max
    if seen.interval_ms is not None and seen.interval_ms > 0:
        state.interval_ms = seen.interval_ms
    if seen.daily_limit is not None and seen.daily_limit > 0:
        state.daily_limit = seen.daily_limit
    if seen.remaining is not None:
        state.remaining = max(0, seen.remaining)
    elif seen.max is not None and state.remaining is None:
        state.remaining = seen.max  # limits said without a count: learnt all the same
    if seen.daily_remaining is not None:
        state.daily_remaining = seen.daily_remaining


def foreign_requests(state: LimitState, remaining: int, ours_busy: int) -> int:
    """Requests GHL counts in the window that `ours` (an upper bound, `ours_since`) cannot
    explain; never negative, never more than there are strangers."""
    return max(0, state.max - max(0, remaining) - ours_busy)


def hold_foreign(state: LimitState, now_ms: float, count: int) -> None:
    """Hold `count` free slots for one interval: strangers' requests age out within it."""
    if count <= 0:
        return
    ensure_slots(state, slot_count(state.max))
    until = now_ms + state.interval_ms
    for i, at in enumerate(state.free_at):
        if count <= 0:
            return
        if at <= now_ms:
            state.free_at[i] = until
            count -= 1


def pause_until_429(
    policy: Policy,
    state: LimitState,
    now_ms: float,
    oldest_counted_ms: float | None,
    retry_after_ms: float | None,
) -> float:
    """When the key may try again after a 429 (the streak already counted in `state`)."""
    window = now_ms + state.interval_ms
    if state.consecutive_429 <= 1 and oldest_counted_ms is not None:
        window = min(window, oldest_counted_ms)  # the first of ours to age out reopens it
    if retry_after_ms:
        window = max(window, now_ms + min(retry_after_ms, policy.max_pause_ms))
    return window


def pause_for_429(
    policy: Policy,
    state: LimitState,
    now_ms: float,
    oldest_counted_ms: float | None,
    retry_after_ms: float | None,
) -> None:
    """Pause this key only, until the window that refused can reopen (see module doc).

    429s answered to requests sent before the current pause began are one event, not a
    streak: they count in `throttled` but do not lengthen the pause.
    """
    state.throttled += 1
    if state.consecutive_429 and now_ms < state.paused_until_ms:
        return
    state.consecutive_429 += 1
    until = pause_until_429(policy, state, now_ms, oldest_counted_ms, retry_after_ms)
    state.paused_until_ms = max(state.paused_until_ms, until)


def pause_if_daily_spent(policy: Policy, state: LimitState, now_ms: float) -> None:
    """At zero left for the day, pause the key and probe again later (reset time unknown)."""
    if state.daily_remaining is not None and state.daily_remaining <= 0:
        state.paused_until_ms = max(state.paused_until_ms, now_ms + policy.daily_probe_ms)


def ms_to_day_end(wall_now: float) -> float:
    """Milliseconds to the next UTC midnight (when the sandbox's day resets; GHL's is unsaid)."""
    ms = wall_now * 1000.0
    return DAY_MS - (ms % DAY_MS)


def daily_pace(policy: Policy, state: LimitState, wall_now: float) -> int | None:
    """Requests per interval the rest of today's budget allows, or None when not pacing.

    Spending the day evenly would leave `(daily limit − reserve) × time left / day` above the
    reserve now. A backlog may run at full speed until it is `daily_headroom` of the daily limit
    ahead of that line (20,000 calls with GHL's defaults: bursts cost nothing); further ahead,
    and when full speed would spend the rest before the day ends, claimed work is paced to
    `(left above reserve) × interval / (time to day end)` requests per interval (at least
    one), so what is left lasts until the reset and live traffic always finds budget.
    """
    if not policy.daily_pacing or state.daily_remaining is None:
        return None
    above = state.daily_remaining - policy.daily_reserve
    if above <= 0:
        return None  # the reserve rule applies
    to_end = ms_to_day_end(wall_now)
    even = (state.daily_limit - policy.daily_reserve) * to_end / DAY_MS
    if above >= even - policy.daily_headroom * state.daily_limit:
        return None
    if above >= state.max * to_end / state.interval_ms:
        return None
    return max(1, math.floor(above * state.interval_ms / to_end))


def has_budget(
    policy: Policy, state: LimitState, now_ms: float, wall_now: float, ours_busy: int
) -> bool:
    """Not paused, above the daily reserve, and within the day's pace (see module doc).

    At or below the reserve, claimers stop, so no request goes out and no header could ever
    tell us the day has reset (GHL does not say when it does). So a count nobody has taken
    from or refreshed for `daily_probe_ms` is stale: the key has budget again, for one claim.
    That claim's first take touches the key, which closes the door until the answer's
    headers either lift the count (the day reset) or confirm it (wait another probe period).
    """
    if state.paused_until_ms > now_ms:
        return False
    if state.daily_remaining is not None and state.daily_remaining <= policy.daily_reserve:
        return now_ms - state.touched_ms >= policy.daily_probe_ms
    pace = daily_pace(policy, state, wall_now)
    return pace is None or ours_busy < pace


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
