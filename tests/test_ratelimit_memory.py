"""MemoryRateLimiter on a FakeClock: pacing, header adaptation, daily reserve, 429 pauses."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ghlsync._clock import FakeClock
from ghlsync.ghl._ratelimit import LimitState, MemoryRateLimiter, Policy
from ghlsync.ghl._ratelimit._policy import try_take
from ghlsync.sandbox._ratelimit import SlidingWindowLimiter
from ghlsync.sandbox._state import Limits


def _headers(
    max_: int = 100, interval: int = 10_000, remaining: int = 50, daily_left: int = 150_000
) -> dict[str, str]:
    return {
        "X-RateLimit-Max": str(max_),
        "X-RateLimit-Interval-Milliseconds": str(interval),
        "X-RateLimit-Remaining": str(remaining),
        "X-RateLimit-Limit-Daily": "200000",
        "X-RateLimit-Daily-Remaining": str(daily_left),
    }


def _limiter(clock: FakeClock, **kwargs: object) -> MemoryRateLimiter:
    return MemoryRateLimiter(clock=clock, rng=random.Random(7), **kwargs)  # type: ignore[arg-type]


async def _drain(limiter: MemoryRateLimiter, clock: FakeClock, key: str, n: int) -> list[float]:
    times = []
    for _ in range(n):
        await limiter.acquire(key)
        times.append(clock.monotonic())
    return times


def _max_in_window(times: list[float], window_s: float) -> int:
    """Most requests in any half-open window (t - window, t], the sandbox's reading."""
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while times[lo] <= t - window_s:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


@pytest.mark.parametrize(
    ("max_", "interval_ms"), [(100, 10_000), (100, 1_000), (20, 1_000), (250, 60_000)]
)
async def test_backlog_drains_at_98_percent_and_never_overfills_a_window(
    max_: int, interval_ms: int
) -> None:
    clock = FakeClock()
    limiter = _limiter(clock, default_max=max_, default_interval_ms=interval_ms)
    times = await _drain(limiter, clock, "loc", 5 * max_)
    assert _max_in_window(times, interval_ms / 1000) <= max_
    rate = (len(times) - 1) / (times[-1] - times[0]) * interval_ms / 1000
    floor = 0.97 * max_ if max_ >= 50 else 0.9 * max_  # max-1 per window caps tiny limits
    assert floor <= rate <= max_


async def test_paced_requests_pass_the_sandbox_sliding_window() -> None:
    clock = FakeClock()
    server = SlidingWindowLimiter(clock)
    limits = Limits(burst=100, interval_ms=1_000)
    limiter = _limiter(clock)  # starts from the 100/10 s default, learns 100/1 s
    for _ in range(600):
        await limiter.acquire("loc")
        decision = server.take("loc", limits)
        assert decision.allowed
        await limiter.observe("loc", 200, decision.headers)
    assert (await limiter.budget("loc")).interval_ms == 1_000


async def test_learns_max_and_interval_from_headers() -> None:
    clock = FakeClock()
    limiter = _limiter(clock)
    await limiter.observe("loc", 200, _headers(max_=50, interval=5_000, remaining=49))
    budget = await limiter.budget("loc")
    assert (budget.max, budget.interval_ms, budget.remaining) == (50, 5_000, 49)
    times = await _drain(limiter, clock, "loc", 101)
    # 50 per 5 s paced at 49 per 5 s: 100 gaps of 5/49 s.
    assert times[-1] - times[0] == pytest.approx(100 * 5 / 49, abs=0.2)


async def test_header_names_are_case_insensitive_and_garbage_is_ignored() -> None:
    limiter = _limiter(FakeClock())
    await limiter.observe("loc", 200, {"x-ratelimit-max": "40", "X-RATELIMIT-REMAINING": "x"})
    budget = await limiter.budget("loc")
    assert budget.max == 40
    assert budget.remaining is None
    assert budget.interval_ms == 10_000


async def test_daily_reserve_turns_has_budget_off() -> None:
    limiter = _limiter(FakeClock(), daily_reserve=2_000)
    assert await limiter.has_budget("loc")
    await limiter.observe("loc", 200, _headers(daily_left=2_001))
    assert await limiter.has_budget("loc")
    await limiter.observe("loc", 200, _headers(daily_left=2_000))
    assert not await limiter.has_budget("loc")
    assert (await limiter.budget("loc")).daily_remaining == 2_000
    assert await limiter.has_budget("other")


async def test_acquire_counts_down_the_daily_estimate() -> None:
    clock = FakeClock()
    limiter = _limiter(clock, daily_reserve=10)
    await limiter.observe("loc", 200, _headers(daily_left=12))
    await _drain(limiter, clock, "loc", 2)
    assert (await limiter.budget("loc")).daily_remaining == 10
    assert not await limiter.has_budget("loc")


async def test_daily_budget_spent_pauses_the_key_for_a_probe_period() -> None:
    clock = FakeClock()
    limiter = _limiter(clock)
    await limiter.observe("loc", 200, _headers(daily_left=0))
    budget = await limiter.budget("loc")
    assert budget.paused_until == pytest.approx(clock.now() + 300, abs=1)


async def _poll_and_send(
    limiter: MemoryRateLimiter, server: SlidingWindowLimiter, limits: Limits, seconds: int
) -> int:
    """A worker asking `has_budget` every second and, when yes, sending a claimed batch of 3."""
    clock = limiter._clock
    assert isinstance(clock, FakeClock)
    sent = 0
    for _ in range(seconds):
        if await limiter.has_budget("loc"):
            for _ in range(3):
                await limiter.acquire("loc")
                decision = server.take("loc", limits)
                assert decision.allowed  # never past the sandbox's daily (or burst) limit
                await limiter.observe("loc", 200, decision.headers)
                sent += 1
        clock.advance(1.0)
    return sent


async def test_a_day_spent_down_to_the_reserve_is_probed_and_resumes_after_the_reset() -> None:
    # The stall: at the reserve nobody claims, so no header could say the day has reset.
    midnight = (1_700_000_000 // 86_400 + 1) * 86_400
    clock = FakeClock(start=midnight - 1_000)
    server = SlidingWindowLimiter(clock)  # its daily count restarts at UTC midnight
    limits = Limits(burst=100, interval_ms=10_000, daily=30)
    limiter = _limiter(clock, daily_reserve=10)
    assert await _poll_and_send(limiter, server, limits, 60) == 21  # down to 9 left
    assert await _poll_and_send(limiter, server, limits, 240) == 0  # quiet: within 5 min
    assert await _poll_and_send(limiter, server, limits, 120) == 3  # one probe, still 6 left
    assert not await limiter.has_budget("loc")  # the probe's headers closed the door again
    clock.advance(midnight + 1 - clock.now())
    # After the reset, the next probe's headers report a fresh day: work resumes to the reserve.
    assert await _poll_and_send(limiter, server, limits, 60) == 21
    assert (await limiter.budget("loc")).daily_remaining == 9


async def test_a_day_spent_to_zero_is_probed_when_the_pause_ends() -> None:
    clock = FakeClock()
    limiter = _limiter(clock)
    await limiter.observe("loc", 200, _headers(daily_left=0))
    clock.advance(299)
    assert not await limiter.has_budget("loc")
    clock.advance(1)
    assert await limiter.has_budget("loc")
    await limiter.acquire("loc")  # the probe; its answer decides what comes next
    assert not await limiter.has_budget("loc")


async def test_429_pauses_only_that_key() -> None:
    clock = FakeClock()
    limiter = _limiter(clock)
    await limiter.observe("a", 429, _headers(remaining=0))
    assert not await limiter.has_budget("a")
    assert await limiter.has_budget("b")
    start = clock.monotonic()
    await limiter.acquire("b")
    assert clock.monotonic() == start  # b went at once
    await limiter.acquire("a")
    waited = clock.monotonic() - start
    assert 10.0 <= waited <= 11.0  # interval + up to 10% jitter
    budget = await limiter.budget("a")
    assert budget.throttled == 1


async def test_repeated_429s_escalate_and_cap_then_2xx_resets() -> None:
    clock = FakeClock()
    limiter = _limiter(clock)
    pauses = []
    for _ in range(7):
        await limiter.observe("a", 429, {})
        pauses.append((await limiter.budget("a")).paused_until - clock.now())
        await limiter.acquire("a")  # waits the pause out
    assert [round(p / 10) for p in pauses[:4]] == [1, 2, 4, 8]
    assert all(p1 > p0 for p0, p1 in itertools.pairwise(pauses[:6]))
    assert max(pauses) <= 330  # capped at 300 s + 10% jitter
    assert pauses[-1] >= 300
    await limiter.observe("a", 200, _headers())
    await limiter.observe("a", 429, {})
    assert (await limiter.budget("a")).paused_until - clock.now() <= 11


async def test_429s_of_requests_already_in_flight_do_not_escalate() -> None:
    clock = FakeClock()
    limiter = _limiter(clock)
    for _ in range(5):
        await limiter.observe("a", 429, {})
    budget = await limiter.budget("a")
    assert budget.throttled == 5
    assert budget.paused_until - clock.now() <= 11


async def test_retry_after_is_honoured_when_longer() -> None:
    clock = FakeClock()
    limiter = _limiter(clock)
    await limiter.observe("a", 429, {"Retry-After": "42"})
    assert (await limiter.budget("a")).paused_until - clock.now() >= 42


async def test_remaining_lower_than_our_pacing_explains_holds_back_by_the_shortfall() -> None:
    clock = FakeClock()
    # Pacing at 80 per second leaves at least 19 of 100 in any window when we are alone.
    limiter = _limiter(clock, default_interval_ms=1_000, safety=0.8)
    await limiter.acquire("a")
    await limiter.observe("a", 200, _headers(interval=1_000, remaining=9))  # 10 short
    start = clock.monotonic()
    await limiter.acquire("a")
    assert clock.monotonic() - start == pytest.approx(10 * 0.0125)  # 10 emissions of 12.5 ms
    assert await limiter.has_budget("a")
    assert (await limiter.budget("a")).throttled == 0


async def test_an_empty_window_delays_by_one_slot_not_a_whole_interval() -> None:
    clock = FakeClock()
    limiter = _limiter(clock, default_interval_ms=1_000)
    await limiter.acquire("a")
    await limiter.observe("a", 200, _headers(interval=1_000, remaining=0))
    assert await limiter.has_budget("a")
    start = clock.monotonic()
    await limiter.acquire("a")
    assert clock.monotonic() - start == pytest.approx(1 / 98)


async def test_plentiful_remaining_changes_nothing() -> None:
    clock = FakeClock()
    limiter = _limiter(clock)
    await limiter.observe("a", 200, _headers(remaining=99))
    start = clock.monotonic()
    await limiter.acquire("a")
    assert clock.monotonic() == start


async def test_learning_a_faster_limit_rescales_what_is_already_scheduled() -> None:
    clock = FakeClock()
    limiter = _limiter(clock)  # default 100 per 10 s: ~102 ms apart
    await limiter.acquire("loc")
    await limiter.observe("loc", 200, _headers(max_=100, interval=1_000, remaining=99))
    start = clock.monotonic()
    await limiter.acquire("loc")
    assert clock.monotonic() - start < 0.011  # one new emission (10.2 ms), not the old 102 ms


class _LateClock(FakeClock):
    """A fake clock whose sleeps overshoot at random, like a busy event loop."""

    def __init__(self, late_s: float) -> None:
        super().__init__()
        self._late = late_s
        self._rng = random.Random(11)

    async def sleep(self, seconds: float) -> None:
        await super().sleep(seconds + self._rng.uniform(0, self._late))


async def test_late_wakeups_keep_their_slots_and_never_overfill_a_window() -> None:
    # 100 per 1 s: emission 10.2 ms, tolerance + catch-up = 10.2 ms of lateness absorbed.
    clock = _LateClock(late_s=0.009)
    limiter = _limiter(clock, default_interval_ms=1_000)
    times = await _drain(limiter, clock, "loc", 1_000)
    assert _max_in_window(times, 1.0) <= 100
    rate = (len(times) - 1) / (times[-1] - times[0])
    assert rate >= 97


def test_a_late_waker_keeps_its_slot_within_the_catch_up() -> None:
    policy = Policy()
    pacing = policy.pacing(100, 1_000)
    slot = 1_000.0 - pacing.tolerance_ms
    on_time = LimitState(key="k", interval_ms=1_000, tat_ms=1_000.0)
    assert try_take(policy, on_time, slot + pacing.catch_up_ms, slot) == 0.0
    assert on_time.tat_ms == 1_000.0 + pacing.emission_ms  # as if it had come on time
    very_late = LimitState(key="k", interval_ms=1_000, tat_ms=1_000.0)
    now = slot + 50.0
    assert try_take(policy, very_late, now, slot) == 0.0
    assert very_late.tat_ms == now - pacing.catch_up_ms + pacing.emission_ms
    no_slot = LimitState(key="k", interval_ms=1_000, tat_ms=1_000.0)
    assert try_take(policy, no_slot, now) == 0.0
    assert no_slot.tat_ms == now + pacing.emission_ms


@settings(max_examples=40, deadline=None)
@given(
    max_=st.integers(2, 300),
    interval_ms=st.integers(100, 60_000),
    safety=st.floats(0.5, 0.99),
    burst=st.floats(0.0, 5.0),
    late_fraction=st.floats(0.0, 1.0),
)
async def test_no_window_ever_holds_more_than_max(
    max_: int, interval_ms: int, safety: float, burst: float, late_fraction: float
) -> None:
    # Wake-ups up to the catch-up late never overfill a window, whatever the knobs.
    pacing = Policy(safety=safety, burst=burst).pacing(max_, interval_ms)
    clock = _LateClock(late_s=late_fraction * pacing.catch_up_ms / 1000)
    limiter = _limiter(
        clock, default_max=max_, default_interval_ms=interval_ms, safety=safety, burst=burst
    )
    times = await _drain(limiter, clock, "loc", 2 * max_ + 5)
    assert _max_in_window(times, interval_ms / 1000) <= max_
