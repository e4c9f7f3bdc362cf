"""What a pipeline run did, in numbers: answers, audit-log outcomes, GHL calls, dead letters."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from ghlsync.demo._send import Answer
from ghlsync.engine import list_dead_letters
from ghlsync.store._tables_engine import audit_log

ENTITY_TYPES = ("contact", "task", "note", "appointment")


@dataclass(frozen=True, slots=True)
class DeadLetterLine:
    """One dead letter, as the summary shows it."""

    entity_type: str
    source_id: str
    event: str
    reason: str


@dataclass(slots=True)
class Summary:
    """The outcome of one pipeline run; `ok` when the verification found no problem."""

    events_sent: int = 0
    answers: dict[int, int] = field(default_factory=dict)  # HTTP status -> count
    outcomes: dict[str, dict[str, int]] = field(default_factory=dict)  # entity -> action -> n
    api_calls: int = 0
    throttled: int = 0  # 429s the sandbox answered (faults included)
    dead_letters: list[DeadLetterLine] = field(default_factory=list)
    send_seconds: float = 0.0
    sync_seconds: float = 0.0
    elapsed: float = 0.0
    problems: list[str] = field(default_factory=list)
    database_url: str = ""  # the store the run used
    # What the stream did wrong on purpose (filled in by whoever knows the stream).
    planted: list[str] = field(default_factory=list)  # "1x invoice.paid (unknown event) -> 404"
    repeats: int = 0  # deliveries sent twice on purpose (answered 200)
    planned_dead_letters: int = 0  # accepted deliveries meant to be unmappable

    @property
    def ok(self) -> bool:
        """True when the sandbox holds exactly what the events imply."""
        return not self.problems

    @property
    def events_per_second(self) -> float:
        """Events sent and synced per second of wall time (sending + syncing)."""
        busy = self.send_seconds + self.sync_seconds
        return self.events_sent / busy if busy > 0 else 0.0

    def count(self, entity_type: str, action: str) -> int:
        """How many entities of a type ended a round with `action` (created, skipped, ...)."""
        return self.outcomes.get(entity_type, {}).get(action, 0)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, for scripts and the benchmarks."""
        return {
            "events_sent": self.events_sent,
            "answers": {str(k): v for k, v in sorted(self.answers.items())},
            "outcomes": self.outcomes,
            "api_calls": self.api_calls,
            "throttled": self.throttled,
            "dead_letters": [vars_of(line) for line in self.dead_letters],
            "send_seconds": round(self.send_seconds, 3),
            "sync_seconds": round(self.sync_seconds, 3),
            "elapsed": round(self.elapsed, 3),
            "problems": self.problems,
            "on_purpose": {
                "refused": self.planted,
                "repeats": self.repeats,
                "dead_letters": self.planned_dead_letters,
            },
            "ok": self.ok,
        }


def planted_deliveries(events: Iterable[Any]) -> list[str]:
    """One line per kind of delivery the stream sends to be refused (expected answer 4xx)."""
    kinds: Counter[str] = Counter()
    for event in events:
        status = event.expect_status
        if 400 <= status < 500:
            kinds[f"{event.event} ({_why_refused(event)}) -> {status}"] += 1
    return [f"{n}x {kind}" for kind, n in sorted(kinds.items())]


def _why_refused(event: Any) -> str:
    if event.encoding == "raw":
        return "not JSON"
    if event.expect_status == 404:
        return "an event the config does not know"
    return "no id field"


def vars_of(line: DeadLetterLine) -> dict[str, str]:
    """A dead-letter line as a dict."""
    return {name: getattr(line, name) for name in line.__slots__}


def count_answers(answers: list[Answer]) -> dict[int, int]:
    """HTTP status -> how many deliveries got it."""
    return dict(sorted(Counter(a.status for a in answers).items()))


def audit_outcomes(engine: sa.Engine) -> dict[str, dict[str, int]]:
    """entity type -> audit action -> count, from the audit log.

    `created` counts entities, other actions count audit lines: a child's event carries its
    contact, so a contact created by its own item and confirmed by a child's item that ran
    alongside has two `created` lines for one GHL contact.
    An `updated` line that cost no call (the change mapped to nothing new in GHL) counts as
    `skipped`: the table shows what changed in GHL.
    """
    a = audit_log.c
    action = sa.case((sa.and_(a.action == "updated", a.calls == 0), "skipped"), else_=a.action)
    count = sa.case(
        (action == "created", sa.func.count(sa.distinct(a.source_id))),
        else_=sa.func.count(),
    )
    query = sa.select(a.entity_type, action, count).group_by(a.entity_type, action)
    out: dict[str, dict[str, int]] = defaultdict(dict)
    with engine.connect() as conn:
        for entity_type, name, n in conn.execute(query):
            out[entity_type][name] = int(n)
    return dict(out)


def dead_letter_lines(engine: sa.Engine) -> list[DeadLetterLine]:
    """Every dead letter not replayed, oldest first."""
    letters = list_dead_letters(engine, limit=10_000)
    return [
        DeadLetterLine(d.entity_type, d.source_id, d.event, d.reason) for d in reversed(letters)
    ]
