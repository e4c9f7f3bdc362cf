"""Reconcile beside a live stream: while the worker syncs DripJobs changes, a sweep's calls
stay within its budget share of the location's rate limit (10% of GHL's 100 per 10 s: one
call a second), counted from the sandbox's call log; live sync keeps flowing and nothing is
throttled (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import itertools

from ghlsync._clock import FakeClock
from ghlsync.reconcile import Sweep
from tests._twoway_kit import TwoWay
from tests.test_reconcile_sweep import _customers

CUSTOMERS, UPDATES = 30, 60
LIVE_EVERY = 0.3  # s between live changes: with two-way's GET, ~7 calls/s of GHL's 10


class _SharedClock(FakeClock):
    """The test's fake time for the sweep, whose pacing pauses also give the live stream a
    moment of real time to run in (a fake sleep alone would never let it in)."""

    def __init__(self, inner: FakeClock) -> None:
        super().__init__()
        self._inner = inner

    def now(self) -> float:
        return self._inner.now()

    def monotonic(self) -> float:
        return self._inner.monotonic()

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)
        await asyncio.sleep(0.05)


async def _live_stream(tw: TwoWay, sweeping: asyncio.Task[object]) -> int:
    """DripJobs changes synced one by one (a steady 3 a second) until the sweep ends."""
    sent = 0
    while not sweeping.done() or sent < UPDATES // 2:
        i = sent % CUSTOMERS
        tw.dripjobs("customer.updated", f"dj{i}", first_name=f"P{i}", email=f"p{i}@x.io",
                    city=f"City {sent}", updated_at=tw.clock.now())  # fmt: skip
        await tw.worker.run_once()
        tw.ghl_events.clear()  # our own writes' echoes: not needed here
        sent += 1
        tw.clock.advance(LIVE_EVERY)
        await asyncio.sleep(0)
        if sent >= UPDATES:
            break
    return sent


async def test_the_sweep_keeps_its_share_while_live_sync_runs(tw: TwoWay) -> None:
    await _customers(tw, CUSTOMERS)
    tw.clock.advance(10)
    before = len(tw.sandbox.state.requests)
    clock = _SharedClock(tw.clock)
    sweep = Sweep(tw.engine, tw.worker.client, tw.sandbox.location_id, clock=clock, page_size=5)

    sweeping = asyncio.ensure_future(sweep.run())
    sent = await _live_stream(tw, sweeping)
    report = await sweeping

    log = tw.sandbox.state.requests[before:]
    ours = [r["time"] for r in log if r["path"] == "/contacts/search"]
    live = [r["time"] for r in log if r["method"] == "PUT"]
    # A contact updated mid-walk moves behind the cursor (sorted by dateUpdated): seen again.
    assert report.contacts_seen >= CUSTOMERS and len(ours) == report.calls
    assert report.drifts == []  # live sync's own writes during the walk are not drift
    assert sent >= UPDATES // 2 and len(live) >= sent // 2  # live sync went on meanwhile
    assert any(ours[0] < t < ours[-1] for t in live)  # ... during the sweep
    # One sweep call a second at most: 10% of the 10 calls a second GHL allows.
    gaps = [b - a for a, b in itertools.pairwise(ours)]
    assert min(gaps) >= 1.0 - 1e-6
    for start in ours:  # in any 10 s window, at most 10 of the 100 calls GHL allows
        assert sum(1 for t in ours if start <= t < start + 10.0) <= 10
    assert not any(r["status"] == 429 for r in log)
