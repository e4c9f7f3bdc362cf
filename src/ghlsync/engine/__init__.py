"""The sync engine: inbox → work queue → worker → flows.

`accept` records a delivery and folds it into its entity's work row; `claim` leases work
fairly across locations; the `Worker` maps each claimed entity and hands it to the flows,
then completes, retries or dead-letters it. See `docs/engine.md`.
"""

from ghlsync.engine._worker import SyncEvent, Worker
from ghlsync.engine.queue._batch import accept_many
from ghlsync.engine.queue._dlq import (
    DeadLetter,
    get_dead_letter,
    list_dead_letters,
    replay,
    replay_all,
)
from ghlsync.engine.queue._inbox import Delivery, accept, delivery_key
from ghlsync.engine.queue._queue import (
    AuditEntry,
    Claim,
    claim,
    complete,
    dead_letter,
    locations_with_work,
    next_due,
    release,
    renew,
    retry,
)
from ghlsync.engine.queue._status import QueueStatus, add_budgets, queue_status

__all__ = [
    "AuditEntry",
    "Claim",
    "DeadLetter",
    "Delivery",
    "QueueStatus",
    "SyncEvent",
    "Worker",
    "accept",
    "accept_many",
    "add_budgets",
    "claim",
    "complete",
    "dead_letter",
    "delivery_key",
    "get_dead_letter",
    "list_dead_letters",
    "locations_with_work",
    "next_due",
    "queue_status",
    "release",
    "renew",
    "replay",
    "replay_all",
    "retry",
]
