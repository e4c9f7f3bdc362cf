"""`/metrics`: the receiver's counters (a registry per app: tests build many apps), the
process's sync metrics (`ghlsync._metrics.SYNC_METRICS`) and the per-location gauges read from
the store at scrape time (`_queue_metrics.QueueCollector`). docs/observability.md lists them."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from ghlsync._metrics import SYNC_METRICS, SyncMetrics

__all__ = ["CONTENT_TYPE_LATEST", "ReceiverMetrics"]


class ReceiverMetrics:
    """DripJobs deliveries by outcome (accepted, duplicate, rejected) and, when rejected, by
    reason; GHL webhooks by outcome and reason."""

    def __init__(self, gauges: Collector | None = None, sync: SyncMetrics = SYNC_METRICS) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._sync = sync
        if gauges is not None:
            self.registry.register(gauges)
        self._deliveries = Counter(
            "ghlsync_dripjobs_deliveries",
            "DripJobs webhook deliveries received, by outcome and rejection reason.",
            ["outcome", "reason"],
            registry=self.registry,
        )
        self._ghl = Counter(
            "ghlsync_ghl_webhooks",
            "GHL webhooks received on /hooks/ghl, by outcome and rejection reason.",
            ["outcome", "reason"],
            registry=self.registry,
        )
        self._events = Counter(
            "ghlsync_dripjobs_events",
            "DripJobs deliveries stored, by event and answer (accepted: 202, duplicate: 200); "
            "refusals are in ghlsync_dripjobs_deliveries_total, whose URL event is unchecked.",
            ["event", "answer"],
            registry=self.registry,
        )
        # Children resolved once: the hot path then pays one locked increment each.
        self._accepted = self._deliveries.labels("accepted", "")
        self._duplicate = self._deliveries.labels("duplicate", "")
        self._by_event: dict[tuple[str, str], Counter] = {}  # a few mapped events

    def accepted(self, event: str = "") -> None:
        """One delivery committed (answered 202); `event` is a mapped (known) event name."""
        self._accepted.inc()
        if event:
            self._event(event, "accepted").inc()

    def duplicate(self, event: str = "") -> None:
        """One delivery seen before (answered 200)."""
        self._duplicate.inc()
        if event:
            self._event(event, "duplicate").inc()

    def _event(self, event: str, answer: str) -> Counter:
        """The child of `ghlsync_dripjobs_events` (`labels()` costs as much as the increment)."""
        child = self._by_event.get((event, answer))
        if child is None:
            child = self._by_event[event, answer] = self._events.labels(event, answer)
        return child

    def rejected(self, reason: str) -> None:
        """One delivery refused; `reason` is the error code of the answer."""
        self._deliveries.labels("rejected", reason).inc()

    def ghl_webhook(self, outcome: str, reason: str) -> None:
        """One GHL webhook `accepted` (verified and ours) or `rejected` with `reason`."""
        self._ghl.labels(outcome, reason).inc()

    def render(self) -> bytes:
        """The exposition text for GET /metrics (reads the store: call it off the event loop)."""
        return generate_latest(self.registry) + generate_latest(self._sync.registry)
