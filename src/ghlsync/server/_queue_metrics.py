"""Per-location gauges for `/metrics`, read from the store when Prometheus scrapes.

The queue (depth, in flight, lag), dead letters not yet replayed, the 429 pause and GHL's
daily budget come from `queue_status` (the same reading as `ghlsync status`); the burst budget
from the shared `rate_budget` rows; token expiry and connection state from `ghl_connections`;
recipe timers (recipe runs: `work_items` rows of entity type `recipe`, docs/recipes.md) waiting
or overdue from the queue.
One reading serves every scrape within `ttl` seconds, so several Prometheus servers (or a
dashboard's refreshes) cost one set of queries. Location ids are labels here: a deployment
serves a bounded set of locations, never one per contact.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import sqlalchemy as sa
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ghlsync._clock import SYSTEM_CLOCK, Clock
from ghlsync.engine.flows.recipes import TimerCounts, timer_counts
from ghlsync.engine.queue._status import QueueStatus, queue_status
from ghlsync.store._tables import ghl_connections, rate_budget

__all__ = ["QueueCollector"]

_log = logging.getLogger("ghlsync.server")
SCRAPE_TTL = 2.0  # seconds one store reading is reused for


@dataclass(slots=True)
class _Reading:
    status: QueueStatus
    tokens: list[tuple[str, str, float | None]] = field(default_factory=list)
    budgets: list[tuple[str, int, int | None, int]] = field(default_factory=list)
    timers: dict[str, TimerCounts] = field(default_factory=dict)


class QueueCollector(Collector):
    """Yields the store's gauges; registered on the app's registry."""

    def __init__(self, engine: sa.Engine, clock: Clock = SYSTEM_CLOCK, ttl: float = SCRAPE_TTL):
        self._engine = engine
        self._clock = clock
        self._ttl = ttl
        self._lock = threading.Lock()
        self._cached: tuple[float, _Reading] | None = None

    def describe(self) -> list[GaugeMetricFamily]:
        """Nothing at registration: `collect` reads the store, which registration must not."""
        return []

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """The gauges; none when the store cannot be read (the scrape itself still answers)."""
        reading = self._reading()
        if reading is None:
            return
        yield from _queue_gauges(reading.status)
        yield from _token_gauges(reading.tokens)
        yield from _budget_gauges(reading.budgets)
        yield from _timer_gauges(reading.status, reading.timers)

    def _reading(self) -> _Reading | None:
        with self._lock:  # one reading at a time; concurrent scrapes share it
            now = time.monotonic()
            if self._cached is not None and now - self._cached[0] < self._ttl:
                return self._cached[1]
            try:
                reading = _Reading(queue_status(self._engine, clock=self._clock))
                reading.tokens = _tokens(self._engine)
                reading.budgets = _budgets(self._engine)
                counts = timer_counts(self._engine, reading.status.at)
                reading.timers = {c.location_id: c for c in counts}
            except Exception:
                _log.exception("reading the queue for /metrics failed")
                return None
            self._cached = (now, reading)
            return reading


def _tokens(engine: sa.Engine) -> list[tuple[str, str, float | None]]:
    """(key, status, expires_at) of each connected location (agency rows left out)."""
    c = ghl_connections.c
    query = sa.select(c.key, c.status, c.expires_at).where(c.user_type == "Location")
    with engine.connect() as conn:
        return [(key, status, expires) for key, status, expires in conn.execute(query)]


def _budgets(engine: sa.Engine) -> list[tuple[str, int, int | None, int]]:
    """(key, burst max, burst remaining as GHL last said, daily limit) of each rate key."""
    r = rate_budget.c
    query = sa.select(r.key, r.max, r.remaining, r.daily_limit)
    with engine.connect() as conn:
        return [
            (k, int(m), None if left is None else int(left), int(d))
            for k, m, left, d in conn.execute(query)
        ]


def _gauge(name: str, doc: str) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=["location"])


def _queue_gauges(status: QueueStatus) -> Iterator[GaugeMetricFamily]:
    depth = _gauge("ghlsync_queue_depth", "Work items not yet synced (pending + in flight).")
    flight = _gauge("ghlsync_queue_in_flight", "Work items leased by a worker right now.")
    lag = _gauge(
        "ghlsync_queue_lag_seconds",
        "Seconds since the oldest pending item came due (0 when none is waiting).",
    )
    dead = _gauge("ghlsync_dead_letters_open", "Dead letters not yet replayed.")
    paused = _gauge(
        "ghlsync_rate_paused_seconds", "Seconds left of a 429 pause (0 when not paused)."
    )
    daily = _gauge(
        "ghlsync_rate_daily_remaining", "GHL's daily request budget left, as GHL last reported it."
    )
    for location, loc in status.locations.items():
        depth.add_metric([location], loc.counts["pending"] + loc.counts["leased"])
        flight.add_metric([location], loc.counts["leased"])
        lag.add_metric([location], loc.oldest_pending_age or 0.0)
        dead.add_metric([location], loc.dead_letters)
        paused.add_metric([location], max(0.0, (loc.paused_until or status.at) - status.at))
        if loc.daily_remaining is not None:
            daily.add_metric([location], loc.daily_remaining)
    workers = GaugeMetricFamily(
        "ghlsync_workers_live", "Worker processes with a fresh heartbeat (any host)."
    )
    workers.add_metric([], status.live_workers())
    yield from (depth, flight, lag, dead, paused, daily, workers)


def _token_gauges(tokens: list[tuple[str, str, float | None]]) -> Iterator[GaugeMetricFamily]:
    up = _gauge(
        "ghlsync_ghl_connection_up",
        "1 when the location's GHL connection is active, 0 when it needs a reconnect.",
    )
    expires = _gauge(
        "ghlsync_ghl_token_expires_timestamp_seconds",
        "When the location's OAuth access token expires (epoch seconds); absent for Private "
        "Integration tokens, which do not expire.",
    )
    for key, state, expires_at in tokens:
        up.add_metric([key], 1.0 if state == "active" else 0.0)
        if expires_at is not None:
            expires.add_metric([key], float(expires_at))
    yield from (up, expires)


def _budget_gauges(budgets: list[tuple[str, int, int | None, int]]) -> Iterator[GaugeMetricFamily]:
    limit = _gauge("ghlsync_rate_burst_limit", "GHL's burst limit: requests per window (10 s).")
    left = _gauge(
        "ghlsync_rate_burst_remaining",
        "Requests left in GHL's burst window, as GHL last reported it (x-ratelimit-remaining).",
    )
    daily = _gauge("ghlsync_rate_daily_limit", "GHL's daily request limit.")
    for key, burst, remaining, daily_limit in budgets:
        limit.add_metric([key], burst)
        daily.add_metric([key], daily_limit)
        if remaining is not None:
            left.add_metric([key], remaining)
    yield from (limit, left, daily)


def _timer_gauges(
    status: QueueStatus, timers: dict[str, TimerCounts]
) -> Iterator[GaugeMetricFamily]:
    waiting = _gauge(
        "ghlsync_timers_pending",
        "Recipe runs waiting for a future time (an `after: wait`, or a retry's back-off).",
    )
    overdue = _gauge("ghlsync_timers_overdue", "Recipe runs due but not yet taken by a worker.")
    late = _gauge(
        "ghlsync_timers_overdue_seconds",
        "Seconds since the longest-overdue recipe run came due (0 when none is overdue).",
    )
    for location in sorted(set(status.locations) | set(timers)):
        found = timers.get(location)
        oldest = found.oldest_due if found else None
        waiting.add_metric([location], found.waiting if found else 0)
        overdue.add_metric([location], found.overdue if found else 0)
        late.add_metric([location], 0.0 if oldest is None else max(0.0, status.at - oldest))
    yield from (waiting, overdue, late)
