"""MemoryRateLimiter on a FakeClock: the window's burst, header adaptation, daily budget, 429s."""

from __future__ import annotations

import heapq
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ghlsync._clock import FakeClock
from ghlsync.ghl._ratelimit import LimitState, MemoryRateLimiter, Policy
from ghlsync.ghl._ratelimit import _policy as p
from ghlsync.sandbox._ratelimit import SlidingWindowLimiter
from ghlsync.sandbox._state import Limits

DAY = 86_400
SIX_AM = (1_700_000_000 // DAY) * DAY + 6 * 3_600  # 18 h before the UTC day ends


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
    return MemoryRateLimiter(clock=clock, **kwargs)  # type: ignore[arg-type]


async def _send_all(
    limiter: MemoryRateLimiter, server: SlidingWindowLimiter, limits: Limits, n: int
) -> list[float]:
    """Acquire, let the sandbox's window count it, observe its answer at once; send times."""
    clock = limiter._clock
    times = []
    for _ in range(n):
        await limiter.acquire("loc")
        times.append(clock.monotonic())
        decision = server.take("loc", limits)
        assert decision.allowed  # never a 429
        await limiter.observe("loc", 200, decision.headers)
    return times


@pytest.mark.parametrize(("n", "intervals"), [(50, 0), (100, 0), (101, 1), (300, 2), (3_000, 29)])
async def test_a_fresh_window_gives_the_whole_burst_n_requests_take_the_minimum(
    n: int, intervals: int
) -> None:
    clock = FakeClock()
    server = SlidingWindowLimiter(clock)
    limiter = _limiter(clock)
    times = await _send_all(limiter, server, Limits(burst=100, interval_ms=10_000), n)
    # ceil(n / 100) - 1 full intervals after the first burst: the least the limit permits
    # (plus the 1 ms margin per interval against clock rounding).
    assert times[-1] - times[0] == pytest.approx(intervals * 10.001)
    assert intervals == math.ceil(n / 100) - 1


async def test_learns_max_and_interval_from_headers() -> None:
    clock = FakeClock()
    server = SlidingWindowLimiter(clock)
    limiter = _limiter(clock)  # starts from the 100 per 10 s default
    times = await _send_all(limiter, server, Limits(burst=50, interval_ms=5_000), 101)
    budget = await limiter.budget("loc")
    assert (budget.max, budget.interval_ms) == (50, 5_000)
    assert times[-1] - times[0] == pytest.approx(10.002)  # bursts of 50 at 0, 5 and 10 s


async def test_until_the_first_answer_one_request_at_a_time() -> None:
    clock = FakeClock()
    limiter = _limiter(clock)
    await limiter.acquire("loc")
    start = clock.monotonic()
    await limiter.acquire("loc")  # no answer yet: only when the unanswered slot times out
    assert clock.monotonic() - start == pytest.approx(limiter.policy.hold_ms / 1000)


async def test_an_answer_frees_its_slot_an_interval_later() -> None:
    clock = FakeClock()
    limiter = _limiter(clock)
    await limiter.acquire("loc")
    await limiter.observe("loc", 200, _headers(max_=2, interval=1_000, remaining=1))
    await limiter.acquire("loc")
    await limiter.observe("loc", 200, _headers(max_=2, interval=1_000, remaining=0))
    start = clock.monotonic()
    await limiter.acquire("loc")
    assert clock.monotonic() - start == pytest.approx(1.001)


async def test_a_send_without_an_answer_frees_its_slot_like_an_answer() -> None:
    clock = FakeClock()
    limiter = _limiter(clock)
    await limiter.acquire("loc")
    await limiter.observe("loc", 200, _headers(max_=1, interval=2_000, remaining=0))
    clock.advance(2.0)
    await limiter.acquire("loc")
    await limiter.observe("loc", 0, {})  # transport error: GHL may have counted it
    start = clock.monotonic()
    await limiter.acquire("loc")
    assert clock.monotonic() - start == pytest.approx(2.001)


async def test_header_names_are_case_insensitive_and_garbage_is_ignored() -> None:
    limiter = _limiter(FakeClock())
    await limiter.observe("loc", 200, {"x-ratelimit-max": "40", "X-RATELIMIT-REMAINING": "x"})
    budget = await limiter.budget("loc")
    assert budget.max == 40
    assert budget.interval_ms == 10_000


async def test_strangers_in_the_window_hold_our_slots_for_an_interval() -> None:
    clock = FakeClock()
    limiter = _limiter(clock)
    await limiter.acquire("loc")
    # The window already holds 60 requests that are not ours (plus the one we just sent).
    await limiter.observe("loc", 200, _headers(remaining=39))
    start = clock.monotonic()
    for k in range(39):
        await limiter.acquire("loc")
        await limiter.observe("loc", 200, _headers(remaining=38 - k))
    assert clock.monotonic() == start  # the 39 left went at once
    await limiter.acquire("loc")
    assert clock.monotonic() - start == pytest.approx(10.0, abs=0.002)


async def test_429_pauses_only_that_key_until_our_oldest_request_leaves_the_window() -> None:
    clock = FakeClock()
    limiter = _limiter(clock)
    for _ in range(10):
        await limiter.acquire("a")
        await limiter.observe("a", 200, _headers(remaining=50))
    clock.advance(3.0)
    await limiter.acquire("a")
    await limiter.observe("a", 429, _headers(remaining=0))
    budget = await limiter.budget("a")
    # The window reopens when our first request ages out (10 s after it), not a fixed pause.
    assert budget.paused_until == pytest.approx(clock.now() + 7.001)
    assert budget.throttled == 1
    assert not await limiter.has_budget("a")
    assert await limiter.has_budget("b")
    start = clock.monotonic()
    await limiter.acquire("b")
    assert clock.monotonic() == start


async def test_429_without_our_requests_in_the_window_waits_one_interval() -> None:
    clock = FakeClock()
    limiter = _limiter(clock)
    await limiter.observe("a", 429, _headers(interval=4_000, remaining=0))
    assert (await limiter.budget("a")).paused_until == pytest.approx(clock.now() + 4.0)


async def test_a_second_429_in_a_row_waits_the_whole_window_then_2xx_resets() -> None:
    clock = FakeClock()
    limiter = _limiter(clock)
    await limiter.acquire("a")
    await limiter.observe("a", 200, _headers(remaining=50))
    clock.advance(1.0)
    await limiter.observe("a", 429, _headers(remaining=0))
    assert (await limiter.budget("a")).paused_until == pytest.approx(clock.now() + 9.001)
    clock.advance(9.0)
    await limiter.observe("a", 429, _headers(remaining=0))
    assert (await limiter.budget("a")).paused_until == pytest.approx(clock.now() + 10.0)
    clock.advance(10.0)
    await limiter.observe("a", 200, _headers(remaining=50))
    assert limiter._state("a").consecutive_429 == 0


async def test_429s_of_requests_already_in_flight_do_not_lengthen_the_pause() -> None:
    clock = FakeClock()
    limiter = _limiter(clock)
    await limiter.observe("a", 429, _headers(remaining=0))
    until = (await limiter.budget("a")).paused_until
    clock.advance(1.0)
    await limiter.observe("a", 429, _headers(remaining=0))
    budget = await limiter.budget("a")
    assert budget.paused_until == pytest.approx(until)
    assert budget.throttled == 2


async def test_retry_after_is_honoured_when_longer() -> None:
    clock = FakeClock()
    limiter = _limiter(clock)
    await limiter.observe("a", 429, {**_headers(remaining=0), "Retry-After": "42"})
    assert (await limiter.budget("a")).paused_until == pytest.approx(clock.now() + 42)


async def test_daily_reserve_turns_has_budget_off() -> None:
    limiter = _limiter(FakeClock(), daily_reserve=2_000)
    assert await limiter.has_budget("loc")
    await limiter.observe("loc", 200, _headers(daily_left=190_001))
    assert await limiter.has_budget("loc")
    await limiter.observe("loc", 200, _headers(daily_left=2_000))
    assert not await limiter.has_budget("loc")
    assert (await limiter.budget("loc")).daily_remaining == 2_000
    assert await limiter.has_budget("other")


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
    midnight = (1_700_000_000 // DAY + 1) * DAY
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


async def test_a_backlog_ahead_of_the_day_is_paced_to_what_is_left() -> None:
    clock = FakeClock(start=SIX_AM)
    limiter = _limiter(clock)
    await limiter.acquire("loc")
    await limiter.observe("loc", 200, _headers(remaining=99, daily_left=150_000))
    assert (await limiter.budget("loc")).daily_pace is None  # near the even line: full speed
    await limiter.observe("loc", 200, _headers(remaining=99, daily_left=50_000))
    budget = await limiter.budget("loc")
    # 48,000 above the reserve over the 18 h left: 7 per 10 s (GHL's full speed is 100).
    assert budget.daily_pace == math.floor(48_000 * 10_000 / (18 * 3_600_000))
    assert budget.daily_pace == 7
    assert await limiter.has_budget("loc")  # one slot busy, the pace allows 7
    for _ in range(6):
        await limiter.acquire("loc")
        await limiter.observe("loc", 200, _headers(remaining=93, daily_left=50_000))
    assert not await limiter.has_budget("loc")  # 7 in this window: claims wait
    clock.advance(10.01)
    assert await limiter.has_budget("loc")


def test_daily_pace_never_spends_the_rest_before_the_day_ends() -> None:
    policy = Policy()
    for hour in range(24):
        for left in (2_500, 10_000, 60_000, 120_000, 200_000):
            state = LimitState(key="k", daily_remaining=left)
            wall = (1_700_000_000 // DAY) * DAY + hour * 3_600 + 1
            pace = p.daily_pace(policy, state, wall)
            if pace is None:
                continue
            to_end = p.ms_to_day_end(wall)
            assert pace * to_end / state.interval_ms <= max(left - 2_000, to_end / 10_000)


class _Clock:
    """The sandbox's clock in the simulation below, set to each event's time."""

    def __init__(self) -> None:
        self.t = 0.0

    def monotonic(self) -> float:
        return self.t

    def now(self) -> float:
        return 1_700_000_000.0 + self.t

    async def sleep(self, seconds: float) -> None:  # pragma: no cover - never awaited
        raise AssertionError


def _simulate(
    n: int, max_: int, interval_ms: int, latencies: list[tuple[float, float]], last: bool = False
) -> Any:
    """Send n requests as fast as the policy allows, each reaching the sandbox's sliding window
    `up` ms after it leaves and answered `down` ms after that; return the 429s (and with
    `last`, when the last request left)."""
    policy = Policy()
    state = LimitState(key="k")
    clock = _Clock()
    server = SlidingWindowLimiter(clock)
    limits = Limits(burst=max_, interval_ms=interval_ms)
    events: list[tuple[float, int, int]] = []  # (time, 0 arrive | 1 answer, request)
    answers: dict[int, dict[str, str]] = {}
    allowed: dict[int, bool] = {}
    now, sent, refused, sent_at = 0.0, 0, 0, 0.0
    while sent < n or events:
        wait = p.try_take(policy, state, now) if sent < n else math.inf
        if wait == 0:
            up, down = latencies[sent % len(latencies)]
            heapq.heappush(events, (now + up, 0, sent))
            heapq.heappush(events, (now + up + down, 1, sent))
            sent, sent_at = sent + 1, now
            continue
        at, kind, i = heapq.heappop(events) if events else (now + wait, -1, -1)
        if events and now + wait < at:
            heapq.heappush(events, (at, kind, i))
            now = now + wait
            continue
        now = max(now, at)
        clock.t = now / 1000
        if kind == 0:
            decision = server.take("k", limits)
            allowed[i], answers[i] = decision.allowed, decision.headers
            refused += not decision.allowed
        elif kind == 1:
            status = 200 if allowed[i] else 429
            p.observe(policy, state, now, status, answers[i], clock.now())
    return (refused, sent_at) if last else refused


@settings(max_examples=25, deadline=None)
@given(
    max_=st.sampled_from([5, 20, 100]),
    interval_ms=st.sampled_from([1_000, 10_000]),
    latencies=st.lists(st.tuples(st.floats(0, 300), st.floats(0, 300)), min_size=1, max_size=12),
)
def test_no_window_ever_holds_more_than_max_whatever_the_network_does(
    max_: int, interval_ms: int, latencies: list[tuple[float, float]]
) -> None:
    assert _simulate(4 * max_ + 3, max_, interval_ms, latencies) == 0


async def test_a_huge_limit_keeps_a_thousand_slots_and_still_never_overfills() -> None:
    clock = FakeClock()
    server = SlidingWindowLimiter(clock)
    limits = Limits(burst=5_000, interval_ms=1_000)
    limiter = _limiter(clock)
    times = await _send_all(limiter, server, limits, 12_000)
    assert len(limiter._state("loc").free_at) == p.MAX_SLOTS
    # 1,000 slots each reused 1,000 / 4,000 s after its answer: 4,000 per second at most.
    assert 2.0 <= times[-1] - times[0] <= 3.1


def test_late_answers_are_not_taken_for_strangers() -> None:
    # Answers come back 400 ms after GHL counted them (a loaded machine): the Remaining they
    # carry is that old, and must not hold a slot as if someone else had spent it (which
    # would push the last of 300 requests a whole window later, past 30 s).
    refused, last = _simulate(300, 100, 10_000, [(0.0, 400.0), (5.0, 50.0)], last=True)
    assert refused == 0
    assert last < 2 * (10_000 + 2 * 400 + 2) + 400
