"""The sync engine: inbox → work queue → worker → flows.

`accept` records a delivery and folds it into its entity's work row; `claim` leases work
fairly across locations; the `Worker` maps each claimed entity and hands it to the flows,
then completes, retries or dead-letters it. See `docs/engine.md`.
"""

from ghlsync.engine._inbox import Delivery, accept, delivery_key
from ghlsync.engine._queue import (
    AuditEntry,
    Claim,
    claim,
    complete,
    dead_letter,
    locations_with_work,
    renew,
    retry,
)
from ghlsync.engine._worker import SyncEvent, Worker

__all__ = [
    "AuditEntry",
    "Claim",
    "Delivery",
    "SyncEvent",
    "Worker",
    "accept",
    "claim",
    "complete",
    "dead_letter",
    "delivery_key",
    "locations_with_work",
    "renew",
    "retry",
]
