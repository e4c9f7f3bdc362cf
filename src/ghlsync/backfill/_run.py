"""`Backfill`: stream a DripJobs CSV export into the sync queue, paced, resumable.

Per batch of rows (`backfill.batch`):

1. each row is keyed, stamped and mapped (`_rows.prepare`); bad rows are parked;
2. rows already in the inbox (this file imported before) are skipped: zero calls;
3. customers the store has never mapped are matched against GHL (`_match`): one search
   each; a single match is linked (id map), several are parked as ambiguous;
4. one transaction queues the rest as deliveries (`engine.accept`, the webhook path), writes
   the links and dead letters, and moves the checkpoint.

A batch is only read when the window (`backfill.window`) has room, so the backfill never runs
more than that far ahead of the workers, and live webhooks wait behind at most the window.
The workers (the CLI runs one in the same process; `serve` or `worker` processes help) sync
the queued rows; the window watches them settle and counts what happened.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from ghlsync._clock import SYSTEM_CLOCK, Clock
from ghlsync.backfill import _checkpoint as checkpoints
from ghlsync.backfill._checkpoint import Checkpoint
from ghlsync.backfill._link import link, mapped_ids
from ghlsync.backfill._match import Match, match_contact
from ghlsync.backfill._park import park, row_label
from ghlsync.backfill._rows import Prepared, Rejected, prepare
from ghlsync.backfill._window import Queued, Window
from ghlsync.dripjobs._csv import CsvRow, column_table, count_rows, file_fingerprint, read_rows
from ghlsync.engine.queue._inbox import Delivery, accept, delivery_key
from ghlsync.ghl._errors import GHLError
from ghlsync.mapping import Mapper
from ghlsync.mapping._backfill import BackfillSettings
from ghlsync.store._engine import begin_immediate
from ghlsync.store._tables_engine import inbox, work_items

__all__ = ["CONNECTION_ID", "Backfill", "BackfillError", "BackfillPlan", "Progress", "Summary"]

CONNECTION_ID = "backfill"
"""The inbox connection of backfilled rows (their delivery ids name file and row)."""

_POLL = 0.02  # seconds between looks at the window while it is full
# The totals of settled rows are saved at most this often: a write per settled row would
# compete with the workers for SQLite's one writer. A kill loses at most this much of them.
_SAVE_EVERY = 1.0


class BackfillError(Exception):
    """The backfill cannot start as asked (message for the user)."""


@dataclass(frozen=True, slots=True)
class BackfillPlan:
    """What to import: the file, its kind, the location, and how."""

    path: Path
    kind: str
    location_id: str
    resume: bool = False
    as_of: str | None = None  # stamp for rows without a timestamp; default: the file's mtime


@dataclass(slots=True)
class Progress:
    """Where a running backfill stands (for the progress bar)."""

    rows_total: int
    rows_done: int = 0
    calls: int = 0
    counts: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True, slots=True)
class Summary:
    """The end of a run: totals over the whole file (across resumes), and how it ended."""

    file_name: str
    kind: str
    rows_total: int
    next_row: int
    counts: dict[str, int]
    calls: int
    seconds: float
    interrupted: bool
    already_finished: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {name: getattr(self, name) for name in self.__slots__}


class Backfill:
    """Feeds one CSV file into the queue; `run()` until every row settled or `stop` is set."""

    def __init__(
        self,
        engine: sa.Engine,
        mapper: Mapper,
        client: Any,
        *,
        settings: BackfillSettings | None = None,
        calls: Callable[[], int] = lambda: 0,
        clock: Clock = SYSTEM_CLOCK,
        on_progress: Callable[[Progress], None] | None = None,
    ) -> None:
        self._engine = engine
        self._mapper = mapper
        self._client = client
        self._settings = settings or mapper.config.backfill
        self._calls = calls
        self._clock = clock
        self._on_progress = on_progress

    async def run(self, plan: BackfillPlan, stop: asyncio.Event | None = None) -> Summary:
        """Import `plan.path`; returns the summary (also when interrupted by `stop`)."""
        stop = stop or asyncio.Event()
        event = event_for(self._mapper, self._settings, plan.kind)
        started, calls_before = self._clock.monotonic(), self._calls()
        point = await asyncio.to_thread(self._open, plan)
        if point.finished:
            return self._summary(point, started, calls_before, interrupted=False, finished=True)
        feed = _Feed(self, plan, point, event)
        interrupted = await feed.run(stop)
        return self._summary(point, started, calls_before, interrupted=interrupted)

    def _open(self, plan: BackfillPlan) -> Checkpoint:
        """The checkpoint to continue from (created, reset or loaded per `plan.resume`)."""
        if not plan.path.is_file():
            raise BackfillError(f"no such file: {plan.path}")
        fingerprint = file_fingerprint(plan.path)
        key = checkpoints.run_key(fingerprint, plan.kind, plan.location_id)
        with begin_immediate(self._engine) as conn:
            point = checkpoints.load(conn, key)
            if point is not None and not point.finished and not plan.resume:
                raise BackfillError(
                    f"an earlier backfill of {plan.path.name} stopped at row {point.next_row} "
                    f"of {point.rows_total + 1}; run it again with --resume to continue there"
                )
            if point is not None and plan.resume:
                return point
            fresh = Checkpoint(
                key, plan.path.name, plan.kind, plan.location_id, count_rows(plan.path), 2
            )
            checkpoints.start(conn, fresh, fingerprint, self._clock.now())
            fresh.started_at = self._clock.now()
            return fresh

    def _summary(
        self,
        point: Checkpoint,
        started: float,
        calls_before: int,
        *,
        interrupted: bool,
        finished: bool = False,
    ) -> Summary:
        return Summary(
            file_name=point.file_name,
            kind=point.kind,
            rows_total=point.rows_total,
            next_row=point.next_row,
            counts=dict(point.counts),
            calls=self._calls() - calls_before,
            seconds=self._clock.monotonic() - started,
            interrupted=interrupted,
            already_finished=finished,
        )


def event_for(mapper: Mapper, settings: BackfillSettings, kind: str) -> str:
    """The configured event rows of `kind` go through; BackfillError naming the choices."""
    event = settings.kinds.get(kind)
    if event is None:
        raise BackfillError(f"unknown --kind {kind!r}; choose one of {', '.join(settings.kinds)}")
    if not mapper.knows(event):
        raise BackfillError(
            f"backfill.kinds.{kind} is {event!r}, which is not one of the configured events"
        )
    return event


class _Feed:
    """One run over the rows of a file from its checkpoint on."""

    def __init__(self, owner: Backfill, plan: BackfillPlan, point: Checkpoint, event: str) -> None:
        self.o = owner
        self.plan = plan
        self.point = point
        self.event = event
        self.prefix = f"backfill:{point.run_key[:24]}:"
        self.window = Window(owner._engine, plan.location_id, point.file_name)
        self.counts: Counter[str] = Counter(point.counts)
        self.as_of = plan.as_of or _mtime(plan.path)
        self.progress = Progress(point.rows_total)
        self.saved_at = owner._clock.monotonic()

    async def run(self, stop: asyncio.Event) -> bool:
        """Feed and watch until done (False) or stopped (True, totals saved)."""
        stopped = await self._run(stop)
        if stopped:
            await asyncio.to_thread(self._save)
        return stopped

    async def _run(self, stop: asyncio.Event) -> bool:
        settings = self.o._settings
        await asyncio.to_thread(self._adopt)
        rows = read_rows(self.plan.path, column_table(settings.columns), start=self.point.next_row)
        for batch in _batches(rows, settings.batch):
            while len(self.window) + len(batch) > max(settings.window, len(batch)):
                if stop.is_set():
                    return True
                await self._settle_or_wait()
            if stop.is_set():
                return True
            await self._feed(batch)
        while len(self.window):
            if stop.is_set():
                return True
            await self._settle_or_wait()
        await asyncio.to_thread(self._finish)
        return False

    # ------------------------------------------------------------------ one batch

    async def _feed(self, batch: list[CsvRow]) -> None:
        prepared: list[Prepared] = []
        rejected: list[Rejected] = []
        for row in batch:
            result = prepare(row, self.event, self.o._mapper, self.as_of)
            if isinstance(result, Prepared):
                prepared.append(result)
            else:
                rejected.append(result)
        fresh, unmapped = await asyncio.to_thread(self._not_seen, prepared)
        try:
            matches = await self._match(unmapped)
        except GHLError as exc:  # e.g. a token without contacts.readonly: stop, resumable
            raise BackfillError(
                f"GHL refused a contact search ({exc}); rows before row {batch[0].number} are "
                "queued: fix it, then run again with --resume"
            ) from exc
        next_row = batch[-1].number + 1
        queued = await asyncio.to_thread(self._commit, fresh, rejected, matches, next_row)
        merged = self.window.add(queued)  # an earlier row of the same customer: settled as one
        self.counts["read"] += len(batch)
        self.counts["seen"] += len(prepared) - len(fresh)
        self.point.next_row = next_row
        self.progress.rows_done += len(batch) - len(queued) + merged
        self._report()

    def _not_seen(self, prepared: list[Prepared]) -> tuple[list[Prepared], list[Prepared]]:
        """Rows not yet in the inbox, and those of them the store maps to nothing."""
        keys = {self._key(p): p for p in prepared}
        with self.o._engine.connect() as conn:
            seen = set(
                conn.execute(
                    sa.select(inbox.c.delivery_key).where(
                        inbox.c.connection_id == CONNECTION_ID,
                        inbox.c.delivery_key.in_(list(keys)),
                    )
                ).scalars()
            )
            fresh = [p for k, p in keys.items() if k not in seen]
            contacts = [p.source_id for p in fresh if p.entity_type == "contact"]
            known = mapped_ids(conn, self.plan.location_id, "contact", contacts)
        unmapped = [p for p in fresh if p.entity_type == "contact" and p.source_id not in known]
        return fresh, unmapped

    async def _match(self, rows: list[Prepared]) -> dict[int, Match]:
        """First-time matching of the customers the store has never seen (concurrently;
        the client's rate limiter paces the searches)."""
        client, location = self.o._client, self.plan.location_id
        found = await asyncio.gather(
            *(match_contact(client, location, p.email, p.phone) for p in rows)
        )
        return {p.number: m for p, m in zip(rows, found, strict=True)}

    def _commit(
        self,
        fresh: list[Prepared],
        rejected: list[Rejected],
        matches: dict[int, Match],
        next_row: int,
    ) -> list[Queued]:
        now = self.o._clock.now()
        queued: list[Queued] = []
        with begin_immediate(self.o._engine) as conn:
            for row in rejected:
                self._park_rejected(conn, row, now)
            for p in fresh:
                match = matches.get(p.number)
                if match is not None and match.kind == "ambiguous":
                    self._park_ambiguous(conn, p, match, now)
                    continue
                linked = match is not None and match.kind == "matched"
                if linked and match is not None and match.ghl_id is not None:
                    linked = link(
                        conn,
                        location_id=self.plan.location_id,
                        entity_type=p.entity_type,
                        source_id=p.source_id,
                        ghl_id=match.ghl_id,
                        detail=f"{row_label(self.point.file_name, p.number)}already in GHL",
                        now=now,
                    )
                # The match report (first-time matching); outcomes are counted as rows settle.
                self.counts["matched" if linked else "new" if match else "known"] += 1
                if accept(conn, self._delivery(p, now)):
                    queued.append(Queued(p.entity_type, p.source_id, p.number, now, linked))
            self.counts["queued"] += len(queued)
            checkpoints.advance(conn, self.point.run_key, next_row, self.counts, now)
        return queued

    def _park_rejected(self, conn: sa.Connection, row: Rejected, now: float) -> None:
        self.counts["rejected"] += 1
        park(
            conn,
            location_id=self.plan.location_id,
            entity_type=self.o._mapper.config.events[self.event].entity,
            source_id=row.source_id,
            event=self.event,
            payload=row.payload,
            reason=row_label(self.point.file_name, row.number) + row.reason,
            error_class=row.error_class,
            now=now,
        )

    def _park_ambiguous(self, conn: sa.Connection, p: Prepared, match: Match, now: float) -> None:
        self.counts["ambiguous"] += 1
        reason = (
            f"{row_label(self.point.file_name, p.number)}customer {p.source_id} matches "
            f"{len(match.ghl_ids)} GHL contacts ({', '.join(match.ghl_ids)}) by email "
            f"{p.email or '-'} / phone {p.phone or '-'}: merge them in GHL (or fix the row), "
            "then run this backfill again"
        )
        park(
            conn,
            location_id=self.plan.location_id,
            entity_type=p.entity_type,
            source_id=p.source_id,
            event=self.event,
            payload=p.payload,
            reason=reason,
            error_class="AmbiguousMatch",
            now=now,
        )

    def _key(self, p: Prepared) -> str:
        return delivery_key(self._delivery(p, 0.0))

    def _delivery(self, p: Prepared, now: float) -> Delivery:
        return Delivery(
            connection_id=CONNECTION_ID,
            location_id=self.plan.location_id,
            event=self.event,
            delivery_id=f"{self.prefix}{p.number}",
            payload=p.payload,
            entity_type=p.entity_type,
            source_id=p.source_id,
            source_updated_at=p.source_updated_at,
            received_at=now,
            action=self.o._mapper.config.events[self.event].action,
        )

    # ------------------------------------------------------------------ settling

    async def _settle_or_wait(self) -> None:
        settled = await asyncio.to_thread(self.window.settle)
        if not settled:
            self._report()
            await asyncio.sleep(_POLL)
            return
        for item in settled:
            self.counts[item.outcome] += 1
        self.progress.rows_done += len(settled)
        if self.o._clock.monotonic() - self.saved_at >= _SAVE_EVERY:
            await asyncio.to_thread(self._save)
        self._report()

    def _save(self) -> None:
        """The running totals into the checkpoint (the row position moves with each batch)."""
        self.saved_at = self.o._clock.monotonic()
        with begin_immediate(self.o._engine) as conn:
            now = self.o._clock.now()
            checkpoints.advance(conn, self.point.run_key, self.point.next_row, self.counts, now)

    def _finish(self) -> None:
        with begin_immediate(self.o._engine) as conn:
            checkpoints.finish(conn, self.point.run_key, self.counts, self.o._clock.now())
        self.point.finished_at = self.o._clock.now()
        self.point.counts = dict(self.counts)

    def _adopt(self) -> None:
        """On resume: rows queued before the stop that are not settled yet join the window
        (the run ends when they have), and the rows before the checkpoint count as done."""
        self.progress.rows_done = max(0, self.point.next_row - 2)
        like = self.prefix.replace("%", r"\%").replace("_", r"\_")
        query = (
            sa.select(work_items.c.entity_type, work_items.c.source_id, inbox.c.delivery_key)
            .join(inbox, inbox.c.work_id == work_items.c.id)
            .where(
                inbox.c.connection_id == CONNECTION_ID,
                inbox.c.delivery_key.like(f"id:{like}%", escape="\\"),
                work_items.c.status.in_(("pending", "leased")),
            )
        )
        now = self.o._clock.now()
        with self.o._engine.connect() as conn:
            rows = conn.execute(query).all()
        adopted = [
            Queued(r.entity_type, r.source_id, int(r.delivery_key.rsplit(":", 1)[1]), now)
            for r in rows
        ]
        self.window.add(adopted)
        self.progress.rows_done -= len(self.window)

    def _report(self) -> None:
        self.point.counts = dict(self.counts)
        if self.o._on_progress is None:
            return
        self.progress.calls = self.o._calls()
        self.progress.counts = self.counts
        self.o._on_progress(self.progress)


def _batches(rows: Iterator[CsvRow], size: int) -> Iterator[list[CsvRow]]:
    while batch := list(itertools.islice(rows, size)):
        yield batch


def _mtime(path: Path) -> str:
    """The file's modification time, as the export's time (ISO 8601, UTC)."""
    return datetime.fromtimestamp(path.stat().st_mtime, UTC).isoformat()
