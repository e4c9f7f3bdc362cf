"""The sync's Prometheus counters and histograms: GHL calls, sync outcomes, write-backs,
recipe timers.

One process-wide `SYNC_METRICS` (the worker, the GHL client and the outbox sender of a process
all count into it; `ghlsync serve` shows it on `/metrics` next to the receiver's counters and
the per-location gauges read from the store). The hot path only increments: no store reads, no
label built from an id. Every label value comes from a closed set (operation ids of the spec,
entity types, audit actions, write-back actions, HTTP status codes), so the number of series
stays bounded however many contacts flow through (docs/observability.md).
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

__all__ = ["SYNC_METRICS", "SyncMetrics"]

# Seconds; GHL answers in 0.1-2 s, a sync includes queueing and retries (minutes at worst).
_CALL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_SYNC_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
# A due timer is taken within a second by a live worker; minutes or hours mean none was.
_TIMER_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 21600.0)


class SyncMetrics:
    """The sync side's metrics, on their own registry (`registry`)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        # Label values -> child, per metric: `labels()` takes a lock and re-checks the values
        # on every call, and the GHL client and the worker count every request and change.
        self._children: dict[tuple[object, tuple[str, ...]], Any] = {}
        reg = self.registry
        self.ghl_calls = Counter(
            "ghlsync_ghl_calls",
            "GHL API requests sent (every attempt), by spec operation id and HTTP status "
            "(`transport_error` when no answer came).",
            ["operation", "status"],
            registry=reg,
        )
        self.ghl_call_seconds = Histogram(
            "ghlsync_ghl_call_duration_seconds",
            "Duration of one GHL API request (one attempt), by operation.",
            ["operation"],
            buckets=_CALL_BUCKETS,
            registry=reg,
        )
        self.ghl_rate_limited = Counter(
            "ghlsync_ghl_rate_limited",
            "GHL answers 429 (rate limited), by operation.",
            ["operation"],
            registry=reg,
        )
        self.ghl_retries = Counter(
            "ghlsync_ghl_retries",
            "GHL requests sent again by the client, by operation and why "
            "(`throttled`: after a 429, `error`: after a 5xx or a transport error).",
            ["operation", "reason"],
            registry=reg,
        )
        self.sync_outcomes = Counter(
            "ghlsync_sync_outcomes",
            "Work items settled by the worker, by entity type and action (created, updated, "
            "skipped, retry, throttled, paused, dead, written_back, ...).",
            ["entity", "action"],
            registry=reg,
        )
        self.sync_latency = Histogram(
            "ghlsync_sync_latency_seconds",
            "From the webhook's arrival to its sync finished in GHL, by entity type (records "
            "whose work row saw one delivery).",
            ["entity"],
            buckets=_SYNC_BUCKETS,
            registry=reg,
        )
        self.dead_letters = Counter(
            "ghlsync_dead_letters",
            "Work items dead-lettered (no more retries), by entity type.",
            ["entity"],
            registry=reg,
        )
        self.writebacks = Counter(
            "ghlsync_writebacks",
            "Write-backs to DripJobs (two-way sync) settled, by action and outcome "
            "(delivered, retry, dead).",
            ["action", "outcome"],
            registry=reg,
        )
        self.writeback_seconds = Histogram(
            "ghlsync_writeback_duration_seconds",
            "Duration of one write-back POST to its Zap URL, by action.",
            ["action"],
            buckets=_CALL_BUCKETS,
            registry=reg,
        )
        self.timers = Counter(
            "ghlsync_timers",
            "Recipe timers (runs with `after: wait`) by outcome: `fired` (a worker took it once "
            "due), `cancelled` (an `unless` trigger came first).",
            ["outcome"],
            registry=reg,
        )
        for outcome in ("fired", "cancelled"):
            self.timers.labels(outcome)  # both series from the start: rate() sees the first
        self.timer_delay = Histogram(
            "ghlsync_timer_delay_seconds",
            "From a recipe timer's due time to a worker taking it.",
            buckets=_TIMER_BUCKETS,
            registry=reg,
        )

    def ghl_call(self, operation: str, status: int | str, seconds: float | None) -> None:
        """One GHL request answered `status` (or `transport_error`) after `seconds`."""
        self._child(self.ghl_calls, operation, str(status)).inc()
        if seconds is not None:
            self._child(self.ghl_call_seconds, operation).observe(seconds)
        if status == 429:
            self._child(self.ghl_rate_limited, operation).inc()

    def ghl_retry(self, operation: str, throttled: bool) -> None:
        """The client sends a request again."""
        self._child(self.ghl_retries, operation, "throttled" if throttled else "error").inc()

    def _child(self, metric: Counter | Histogram, *values: str) -> Any:
        """`metric.labels(*values)`, kept: the label sets are closed, so this stays small."""
        child = self._children.get((metric, values))
        if child is None:
            child = self._children[metric, values] = metric.labels(*values)
        return child

    def outcome(self, entity: str, action: str) -> None:
        """One settled item (or one record of it) ended with `action`."""
        self._child(self.sync_outcomes, entity, action).inc()
        if action == "dead":
            self._child(self.dead_letters, entity).inc()

    def synced(self, entity: str, seconds: float) -> None:
        """A record reached GHL `seconds` after its webhook arrived."""
        self._child(self.sync_latency, entity).observe(max(0.0, seconds))

    def writeback(self, action: str, outcome: str) -> None:
        """A write-back ended an attempt as `outcome` (delivered, retry, dead)."""
        self._child(self.writebacks, action, outcome).inc()

    def writeback_sent(self, action: str, seconds: float) -> None:
        """A write-back POST answered (any status) after `seconds`."""
        self._child(self.writeback_seconds, action).observe(seconds)

    def timer_fired(self, late: float) -> None:
        """A worker took a recipe timer `late` seconds after it came due."""
        self.timers.labels("fired").inc()
        self.timer_delay.observe(max(0.0, late))

    def timers_cancelled(self, count: int) -> None:
        """`count` waiting recipe timers were cancelled by their `unless` trigger."""
        if count > 0:
            self.timers.labels("cancelled").inc(count)


SYNC_METRICS = SyncMetrics()
