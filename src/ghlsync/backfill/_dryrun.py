"""`backfill --dry-run`: what a backfill would do, with the match report; nothing is written.

Reads the whole file through the same preparation as a real run. For each row: rejected (and
why), already imported (its delivery is in the inbox), or its customer is known to the store
(`updated` when the mapped content differs from what was last synced, else `unchanged`), or
first-time matched against GHL (searches only: `matched`, `new` → would be created,
`ambiguous` → would be parked). A later row of a customer met earlier in the file counts as
`repeated` (merged into that customer's one work row); a new customer whose email or phone
an earlier new row already has is `matched` too (GHL's duplicate rule links it).
The only GHL calls are the searches, paced by the rate limiter like any other.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from ghlsync.backfill import _checkpoint as checkpoints
from ghlsync.backfill._match import Match, match_contact
from ghlsync.backfill._rows import Prepared, Rejected, prepare
from ghlsync.backfill._run import (
    CONNECTION_ID,
    BackfillPlan,
    Progress,
    _batches,
    _mtime,
    event_for,
)
from ghlsync.dripjobs._csv import column_table, count_rows, file_fingerprint, read_rows
from ghlsync.engine.queue._inbox import Delivery, delivery_key
from ghlsync.engine.state._syncstate import mapped_with_state
from ghlsync.mapping import Mapper
from ghlsync.mapping._backfill import BackfillSettings
from ghlsync.store._tables_engine import inbox
from ghlsync.store._tables_sync import id_map, sync_state

__all__ = ["DryRunReport", "dry_run"]

_SAMPLES = 20  # rows listed per problem kind; the counts cover all of them


@dataclass(slots=True)
class DryRunReport:
    """Counts per outcome, the match report, and example rows for the problems."""

    file_name: str
    kind: str
    rows_total: int
    counts: Counter[str] = field(default_factory=Counter)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    ambiguous: list[dict[str, Any]] = field(default_factory=list)
    calls: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: `would` (created/updated/unchanged/linked/...), `match` report, samples."""
        c = self.counts
        return {
            "file": self.file_name,
            "kind": self.kind,
            "rows": self.rows_total,
            "would": {
                "create": c["new"],
                "link": c["matched"] + c["twin"],
                "update": c["updated"],
                "unchanged": c["unchanged"],
                "reject": c["rejected"],
                "park": c["ambiguous"],
                "skip_imported": c["seen"],
                "merge_repeated": c["repeated"],
            },
            "match": {"matched": c["matched"], "new": c["new"], "ambiguous": c["ambiguous"]},
            "rejected": self.rejected,
            "ambiguous": self.ambiguous,
            "calls": self.calls,
        }


async def dry_run(
    engine: sa.Engine,
    mapper: Mapper,
    client: Any,
    plan: BackfillPlan,
    *,
    settings: BackfillSettings | None = None,
    calls: Callable[[], int] = lambda: 0,
    on_progress: Callable[[Progress], None] | None = None,
) -> DryRunReport:
    """Report what `plan` would do; writes nothing anywhere."""
    settings = settings or mapper.config.backfill
    event = event_for(mapper, settings, plan.kind)
    fingerprint = await asyncio.to_thread(file_fingerprint, plan.path)
    total = await asyncio.to_thread(count_rows, plan.path)
    key = checkpoints.run_key(fingerprint, plan.kind, plan.location_id)
    report = DryRunReport(plan.path.name, plan.kind, total)
    state = _State(engine, mapper, client, plan, event, f"backfill:{key[:24]}:", report)
    progress = Progress(total)
    as_of = plan.as_of or _mtime(plan.path)
    rows = read_rows(plan.path, column_table(settings.columns))
    before = calls()
    for batch in _batches(rows, max(settings.batch, 50)):
        prepared = [prepare(row, event, mapper, as_of) for row in batch]
        await state.judge(prepared)
        progress.rows_done += len(batch)
        progress.calls = calls() - before
        progress.counts = report.counts
        if on_progress is not None:
            on_progress(progress)
    report.calls = calls() - before
    return report


class _State:
    """What the dry run remembers across rows (customers and emails/phones met so far)."""

    def __init__(
        self,
        engine: sa.Engine,
        mapper: Mapper,
        client: Any,
        plan: BackfillPlan,
        event: str,
        prefix: str,
        report: DryRunReport,
    ) -> None:
        self.engine, self.mapper, self.client = engine, mapper, client
        self.plan, self.event, self.prefix, self.report = plan, event, prefix, report
        self.customers: dict[str, int] = {}
        self.people: dict[str, int] = {}

    async def judge(self, rows: list[Prepared | Rejected]) -> None:
        counts = self.report.counts
        good: list[Prepared] = []
        for row in rows:
            if isinstance(row, Rejected):
                counts["rejected"] += 1
                if len(self.report.rejected) < _SAMPLES:
                    self.report.rejected.append({"row": row.number, "reason": row.reason})
            elif row.source_id in self.customers:
                counts["repeated"] += 1
            else:
                self.customers[row.source_id] = row.number
                good.append(row)
        seen, known = await asyncio.to_thread(self._store, good)
        unknown: list[Prepared] = []
        for row in good:
            if row.number in seen:
                counts["seen"] += 1
            elif row.source_id in known:
                counts["unchanged" if known[row.source_id] == row.content_hash else "updated"] += 1
            elif self._met(row):
                counts["twin"] += 1
            else:
                unknown.append(row)
        found = await asyncio.gather(
            *(match_contact(self.client, self.plan.location_id, r.email, r.phone) for r in unknown)
        )
        for row, match in zip(unknown, found, strict=True):
            self._count_match(row, match)

    def _met(self, row: Prepared) -> bool:
        """An earlier new row has this email or phone: GHL will link the two."""
        keys = [k for k in (row.email, row.phone) if k]
        hit = any(k in self.people for k in keys)
        for k in keys:
            self.people.setdefault(k, row.number)
        return hit

    def _count_match(self, row: Prepared, match: Match) -> None:
        self.report.counts[match.kind] += 1
        if match.kind == "ambiguous" and len(self.report.ambiguous) < _SAMPLES:
            self.report.ambiguous.append(
                {
                    "row": row.number,
                    "customer": row.source_id,
                    "email": row.email,
                    "phone": row.phone,
                    "ghl_ids": list(match.ghl_ids),
                }
            )

    def _store(self, rows: list[Prepared]) -> tuple[set[int], dict[str, str]]:
        """Rows already in the inbox (by number); content hash of mapped customers (or "")."""
        if not rows:
            return set(), {}
        keys = {self._key(r): r.number for r in rows}
        ids = [r.source_id for r in rows]
        location = self.plan.location_id
        with self.engine.connect() as conn:
            seen_keys = conn.execute(
                sa.select(inbox.c.delivery_key).where(
                    inbox.c.connection_id == CONNECTION_ID, inbox.c.delivery_key.in_(list(keys))
                )
            ).scalars()
            seen = {keys[k] for k in seen_keys}
            mapped = conn.execute(
                mapped_with_state(id_map.c.source_id, sync_state.c.content_hash).where(
                    id_map.c.location_id == location,
                    id_map.c.entity_type == "contact",
                    id_map.c.source_id.in_(ids),
                )
            ).all()
        return seen, {r.source_id: r.content_hash or "" for r in mapped}

    def _key(self, row: Prepared) -> str:
        return delivery_key(
            Delivery(
                CONNECTION_ID,
                self.plan.location_id,
                self.event,
                f"{self.prefix}{row.number}",
                {},
                row.entity_type,
                row.source_id,
                None,
                0.0,
            )
        )
