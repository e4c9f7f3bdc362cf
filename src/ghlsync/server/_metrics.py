"""Prometheus counters of the receiver, on a registry per app (tests build many apps)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "ReceiverMetrics"]


class ReceiverMetrics:
    """DripJobs deliveries by outcome (accepted, duplicate, rejected) and, when rejected, by
    reason; GHL webhooks by outcome and reason."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
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
        # Children resolved once: the hot path then pays one locked increment.
        self._accepted = self._deliveries.labels("accepted", "")
        self._duplicate = self._deliveries.labels("duplicate", "")

    def accepted(self) -> None:
        """One delivery committed (answered 202)."""
        self._accepted.inc()

    def duplicate(self) -> None:
        """One delivery seen before (answered 200)."""
        self._duplicate.inc()

    def rejected(self, reason: str) -> None:
        """One delivery refused; `reason` is the error code of the answer."""
        self._deliveries.labels("rejected", reason).inc()

    def ghl_webhook(self, outcome: str, reason: str) -> None:
        """One GHL webhook `accepted` (verified and ours) or `rejected` with `reason`."""
        self._ghl.labels(outcome, reason).inc()

    def render(self) -> bytes:
        """The exposition text for GET /metrics."""
        return generate_latest(self.registry)
