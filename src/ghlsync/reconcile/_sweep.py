"""The reconciliation sweep: walk a location's GHL contacts and compare them with the store.

Drift it reports (`Drift.kind`):

- `deleted_in_ghl`: a contact the store maps is gone from GHL (not in a complete walk, and
  `GET /contacts/{id}` confirms it: GHL's search index lags behind its writes);
- `changed_in_ghl`: a field ghlsync wrote holds another value in GHL, and no GHL webhook
  told us (two-way sync's record of GHL does not have that value either);
- `ghl_duplicate`: two or more GHL contacts with one email or one phone;
- `store_orphan`: a store row with no GHL object (a create never confirmed for an hour, a
  sync state without a mapping).

Each drift names its `entity`: `contact`, or a child of a mapped contact (`task`, `note`,
`appointment`: `_children`), which can be `deleted_in_ghl` (missing from its contact's list
in GHL, or its contact is gone), `changed_in_ghl` (a field we wrote differs) or a
`store_orphan` (a create never confirmed).

`repair=True` fixes what has a safe fix: a deleted contact whose DripJobs data the queue still
holds is forgotten and queued again (the worker creates it anew); a GHL-side edit is recorded
on the GHL side (two-way sync's `ghl_records`, and `ghl_changes` for `status`), so the field
owner rules apply to it; a stale pending create is queued again (the flows look it up before
creating); a stray sync state is dropped; a deleted task, note or appointment whose DripJobs
data the queue holds is queued again too. Duplicates are linked (an audit line `duplicate`
on each DripJobs customer on them, so `ghlsync record` shows them) and reported, never
merged or deleted.

Pacing: one search page (100 contacts) per call, spaced so the sweep uses at most `budget`
(default 10%) of the location's rate limit; every call also takes its turn from the shared
limiter, so live sync is never starved.

Resuming (the periodic sweep in `serve`, `_schedule`): `resume_from` is the search cursor a
cut-off walk had reached, `resume_ids` the mapped contacts it had seen before the cut, and
`on_page(cursor, contacts_seen, mapped_ids)` is awaited after each page is compared (with the
mapped contacts of that page), before the next is asked for. So a resumed walk still tells
deleted contacts apart; only `--since` (a partial walk) does not look for deletions.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from ghlsync._clock import SYSTEM_CLOCK, Clock
from ghlsync.engine.flows.to_ghl._plan import CONTACTS_VERSION
from ghlsync.ghl._errors import NotFoundError, RateLimitedError
from ghlsync.reconcile._children import (
    Child,
    changed_child_fields,
    list_path,
    listed,
    load_children,
)
from ghlsync.reconcile._compare import changed_fields, contact_keys
from ghlsync.reconcile._repair import Repairs
from ghlsync.reconcile._store import StoreView, in_flight, load_view

__all__ = ["Drift", "Sweep", "SweepReport"]

PAGE = 100
STALE_PENDING = 3600.0  # a create unconfirmed this long is an orphan
DEFAULT_RATE = 100 / 10.0  # GHL's documented burst: 100 requests per 10 s
THROTTLE_RETRIES = 5

OnPage = Callable[[Any, int, list[str]], Awaitable[None]]


@dataclass(slots=True)
class Drift:
    """One difference between GHL and the store, and what `--repair` did about it."""

    kind: str
    ghl_ids: list[str]
    dripjobs_ids: list[str]
    detail: str
    fields: dict[str, Any] | None = None
    repair: str | None = None
    entity: str = "contact"

    @property
    def label(self) -> str:
        """The kind, prefixed with the entity for a child: `task_deleted_in_ghl`."""
        return self.kind if self.entity == "contact" else f"{self.entity}_{self.kind}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {name: getattr(self, name) for name in self.__slots__}


@dataclass(slots=True)
class SweepReport:
    """What one sweep saw and found."""

    location_id: str
    started_at: float
    finished_at: float = 0.0
    complete: bool = True  # False with --since: deletions cannot be told apart
    contacts_seen: int = 0
    calls: int = 0
    drifts: list[Drift] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """Drift per kind (`task_deleted_in_ghl` for a child's)."""
        return dict(Counter(d.label for d in self.drifts))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "location_id": self.location_id,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "complete": self.complete,
            "contacts_seen": self.contacts_seen,
            "calls": self.calls,
            "counts": self.counts(),
            "drift": [d.to_dict() for d in self.drifts],
        }


class Sweep:
    """One sweep over one location (see the module docstring)."""

    def __init__(
        self,
        engine: sa.Engine,
        client: Any,
        location_id: str,
        *,
        since: datetime | None = None,
        budget: float = 0.1,
        clock: Clock = SYSTEM_CLOCK,
        page_size: int = PAGE,
        resume_from: Any = None,
        resume_seen: int = 0,
        resume_ids: Iterable[str] = (),
        on_page: OnPage | None = None,
    ) -> None:
        self._engine = engine
        self._client = client
        self._location = location_id
        self._since = since
        self._budget = budget
        self._clock = clock
        self._own_calls = 0
        self._page_size = page_size
        self._last_call = -1e9
        self._resume = (resume_from, resume_seen)
        self._resume_ids = set(resume_ids)
        self._on_page = on_page

    async def run(self, *, repair: bool = False) -> SweepReport:
        """Walk, compare, and (with `repair`) fix what is safe to fix."""
        now = self._clock.now()
        cursor, earlier = self._resume
        complete = self._since is None
        report = SweepReport(self._location, now, complete=complete, contacts_seen=earlier)
        view = await asyncio.to_thread(
            load_view, self._engine, self._location, stale_after=STALE_PENDING, now=now
        )
        seen: set[str] = set(self._resume_ids)
        page_ids: list[str] = []
        people: dict[tuple[str, str], list[str]] = {}

        async def _page_done(after: Any) -> None:
            if self._on_page is not None:
                await self._on_page(after, report.contacts_seen, list(page_ids))
            page_ids.clear()

        async for contact in self._walk(cursor, _page_done):
            report.contacts_seen += 1
            ghl_id = str(contact.get("id") or "")
            seen.add(ghl_id)
            if ghl_id in view.mapped:
                page_ids.append(ghl_id)
            for key in contact_keys(contact):
                people.setdefault(key, []).append(ghl_id)
            drift = self._changed(view, contact)
            if drift is not None:
                drift = await self._still_changed(drift, contact)
            if drift is not None:
                report.drifts.append(drift)
        if report.complete:
            report.drifts += await self._deleted(view, seen)
        gone = {g for d in report.drifts if d.kind == "deleted_in_ghl" for g in d.ghl_ids}
        report.drifts += _duplicates(view, people)
        report.drifts += [
            Drift("store_orphan", [], [o["dripjobs_id"]], o["why"]) for o in view.orphans
        ]
        walked = None if report.complete else seen
        report.drifts += await self._children(now, gone, walked)
        if repair:
            fixes = Repairs(self._engine, self._location, self._clock)
            for drift in report.drifts:
                drift.repair = await asyncio.to_thread(fixes.apply, drift)
        report.calls = self._own_calls
        report.finished_at = self._clock.now()
        return report

    # ------------------------------------------------------------------ GHL

    async def _walk(self, cursor: Any, page_done: Callable[[Any], Awaitable[None]]) -> Any:
        """Every contact of the location, oldest update first (after `cursor` when
        resuming); with `since`, newest first down to `since` (a sort, not a range filter: it
        pages the same way everywhere). `page_done(cursor)` runs once a page is compared."""
        since = self._since
        newest_first = since is not None
        body: dict[str, Any] = {
            "pageLimit": self._page_size,
            "sort": [{"field": "dateUpdated", "direction": "desc" if newest_first else "asc"}],
        }
        if cursor is not None:
            body["searchAfter"] = cursor
        while True:
            page = await self._page(body)
            for contact in page.contacts:
                if since is not None and _updated(contact) < since:
                    return
                yield contact
            cursor = page.contacts[-1].get("searchAfter") if page.contacts else None
            if len(page.contacts) < self._page_size or not cursor:
                return
            await page_done(cursor)
            body = {**body, "searchAfter": cursor}

    async def _page(self, body: dict[str, Any]) -> Any:
        """One search page; a 429 (live sync took the budget) waits a window and tries again."""
        for attempt in range(THROTTLE_RETRIES + 1):
            await self._pace()
            try:
                return await self._client.contacts.search_page(self._location, body)
            except RateLimitedError:
                if attempt == THROTTLE_RETRIES:
                    raise
                await self._clock.sleep(self._window())
        raise AssertionError("unreachable")  # pragma: no cover

    def _window(self) -> float:
        info = self._client.last_rate(self._location)
        return (info.interval_ms / 1000.0) if info is not None and info.interval_ms else 10.0

    async def _pace(self) -> None:
        """Space calls so the sweep takes at most its budget share of the location's rate."""
        rate = DEFAULT_RATE
        info = self._client.last_rate(self._location)
        if info is not None and info.max and info.interval_ms:
            rate = info.max / (info.interval_ms / 1000.0)
        gap = 1.0 / (rate * self._budget)
        wait = self._last_call + gap - self._clock.monotonic()
        if wait > 0:
            await self._clock.sleep(wait)
        self._last_call = self._clock.monotonic()
        self._own_calls += 1

    async def _gone(self, ghl_id: str) -> bool:
        """GET says the contact is gone (404, or marked deleted)."""
        await self._pace()
        try:
            contact = await self._client.contacts.get(self._location, ghl_id)
        except NotFoundError:
            return True
        return bool(getattr(contact, "deleted", False))

    async def _list(self, contact_id: str, kind: str) -> Any:
        """A contact's children of `kind` as GHL lists them (None: the contact is gone)."""
        await self._pace()
        try:
            return await self._client.request(
                "GET", list_path(contact_id, kind), key=self._location, version=CONTACTS_VERSION
            )
        except NotFoundError:
            return None

    async def _card(self, child: Child, contact_gone: bool, known: dict[str, Any]) -> Drift | None:
        """One deal/project card: `GET /opportunities/{id}` (no per-contact list exists)."""
        if contact_gone:
            return _child_gone(child, "its contact no longer exists in GHL")
        await self._pace()
        try:
            answer = await self._client.request(
                "GET",
                f"/opportunities/{child.ghl_id}",
                key=self._location,
                version=CONTACTS_VERSION,
            )
        except NotFoundError:
            return _child_gone(child, "mapped opportunity no longer exists in GHL")
        record = answer.get("opportunity") if isinstance(answer, dict) else None
        if not isinstance(record, dict):
            return _child_gone(child, "mapped opportunity no longer exists in GHL")
        changes = changed_child_fields(child, record, known)
        return _child_changed(child, changes) if changes else None

    # ------------------------------------------------------------------ drift

    async def _children(self, now: float, gone: set[str], walked: set[str] | None) -> list[Drift]:
        """Drift of the mapped contacts' tasks, notes and appointments (`_children`); with a
        partial walk (`walked`), only of the contacts it saw."""
        view = await asyncio.to_thread(
            load_children, self._engine, self._location, stale_after=STALE_PENDING, now=now
        )
        found = [
            Drift("store_orphan", [], [source], "create never confirmed", entity=kind)
            for kind, source in view.orphans
        ]
        for (contact_id, kind), children in sorted(view.groups.items()):
            if not contact_id or (walked is not None and contact_id not in walked):
                continue
            if kind == "opportunity":
                for card in children:
                    known = view.seen_in_ghl.get((kind, card.ghl_id), {})
                    if drift := await self._card(card, contact_id in gone, known):
                        found.append(drift)
                continue
            answer = None if contact_id in gone else await self._list(contact_id, kind)
            if answer is None:
                found += [_child_gone(c, "its contact no longer exists in GHL") for c in children]
                continue
            records = listed(answer, kind)
            for child in children:
                record = records.get(child.ghl_id)
                if record is None:
                    found.append(_child_gone(child, f"mapped {kind} no longer exists in GHL"))
                elif changes := changed_child_fields(
                    child, record, view.seen_in_ghl.get((kind, child.ghl_id), {})
                ):
                    found.append(_child_changed(child, changes))
        return found

    async def _still_changed(self, drift: Drift, contact: dict[str, Any]) -> Drift | None:
        """The drift as the store stands now: live sync may have written the contact since the
        sweep read the store (its write is then what GHL shows), or be writing it."""
        view = await asyncio.to_thread(
            load_view,
            self._engine,
            self._location,
            stale_after=STALE_PENDING,
            now=self._clock.now(),
            ghl_id=drift.ghl_ids[0],
        )
        again = self._changed(view, contact)
        if again is None or await asyncio.to_thread(
            in_flight, self._engine, self._location, again.dripjobs_ids
        ):
            return None
        return again

    def _changed(self, view: StoreView, contact: dict[str, Any]) -> Drift | None:
        mapped = view.mapped.get(str(contact.get("id") or ""))
        if mapped is None or not mapped.body:
            return None
        changes = changed_fields(mapped.body, contact)
        known = view.seen_in_ghl.get(mapped.ghl_id, {})  # a webhook told us: not drift
        changes = {k: c for k, c in changes.items() if k not in known or known[k] != c["ghl"]}
        if not changes:
            return None
        names = ", ".join(sorted(changes))
        return Drift(
            "changed_in_ghl",
            [mapped.ghl_id],
            list(mapped.source_ids),
            f"changed in GHL since ghlsync wrote it: {names}",
            fields={**changes, "_dateUpdated": contact.get("dateUpdated")},
        )

    async def _deleted(self, view: StoreView, seen: set[str]) -> list[Drift]:
        found = []
        for ghl_id, mapped in sorted(view.mapped.items()):
            if ghl_id in seen or not await self._gone(ghl_id):
                continue
            found.append(
                Drift(
                    "deleted_in_ghl",
                    [ghl_id],
                    list(mapped.source_ids),
                    "mapped contact no longer exists in GHL",
                )
            )
        return found


def _child_gone(child: Child, why: str) -> Drift:
    return Drift("deleted_in_ghl", [child.ghl_id], [child.source_id], why, entity=child.kind)


def _child_changed(child: Child, changes: dict[str, dict[str, Any]]) -> Drift:
    names = ", ".join(sorted(changes))
    return Drift(
        "changed_in_ghl",
        [child.ghl_id],
        [child.source_id],
        f"{child.kind} changed in GHL since ghlsync wrote it: {names}",
        fields={**changes, "_contact": child.contact_id},
        entity=child.kind,
    )


def _duplicates(view: StoreView, people: dict[tuple[str, str], list[str]]) -> list[Drift]:
    found = []
    reported: set[tuple[str, ...]] = set()
    for (kind, value), ids in sorted(people.items()):
        group = tuple(sorted(set(ids)))
        if len(group) < 2 or group in reported:
            continue
        reported.add(group)
        ours = sorted(
            s for g in group for s in (view.mapped[g].source_ids if g in view.mapped else [])
        )
        found.append(
            Drift(
                "ghl_duplicate",
                list(group),
                ours,
                f"{len(group)} GHL contacts share the {kind} {value}",
            )
        )
    return found


def _updated(contact: dict[str, Any]) -> datetime:
    """A contact's `dateUpdated` (else `dateAdded`); the epoch when it has neither."""
    stamp = str(contact.get("dateUpdated") or contact.get("dateAdded") or "")
    try:
        value = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return datetime.fromtimestamp(0, UTC)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def since_date(text: str) -> datetime:
    """`--since` as a date or date-time (ISO 8601, UTC when no offset)."""
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)
