"""The worker: claim entities, map them, hand them to the flows, settle the queue row.

One item's life: claim (leased) → `mapper.map(event, merged payload)` for each event still to
run → `sync_event(FlowContext, mapped)` → complete (or retry / dead-letter, see `_failures`).
Nothing an item raises escapes `_process`: the worker never crashes on bad data or a bug.
Queue writes are short synchronous transactions, run in a thread so that a busy SQLite file
never stalls the event loop (the receiver may share it in `ghlsync serve`); the settles of
items finishing together share one transaction (`_settle`).

Waking up: on PostgreSQL an idle worker sleeps until a `NOTIFY ghlsync_work` (sent by `accept`
at commit, from any process), until the next retry or lease expiry comes due, or at most
`idle_poll` seconds; on SQLite it polls every `poll_interval` (and wakes at once for work
accepted in its own process). A drained worker claims again only when woken, when its sleep
ends, or when an item finishes that had a wake-up come while it was leased (a delivery merged
into its row); an item finishing alone brings no work, and at a low rate those empty claims
were as many as the real ones. Stopping: `run(stop, drain_seconds=N)` claims nothing more,
gives the items in flight N seconds, then releases the leases of the rest (`release`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import random
import socket
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import sqlalchemy as sa
import structlog

from ghlsync._clock import SYSTEM_CLOCK, Clock
from ghlsync._metrics import SYNC_METRICS
from ghlsync.engine._failures import CONFIG_PAUSE_SECONDS, Failure, classify_failure, gave_up
from ghlsync.engine._later import Later
from ghlsync.engine.flows.to_dripjobs._dispatch import is_ghl_work, sync_ghl
from ghlsync.engine.flows.to_dripjobs._link import link_echo
from ghlsync.engine.flows.to_ghl._model import FlowContext, ParentNotSyncedError
from ghlsync.engine.locations._directory import LocationDirectory
from ghlsync.engine.outbox._sender import OutboxSender, default_outbox
from ghlsync.engine.queue import _claim_pg
from ghlsync.engine.queue._heartbeat import HEARTBEAT_SECONDS, beat, forget, prune
from ghlsync.engine.queue._inbox import ACCEPTED_FLAG
from ghlsync.engine.queue._notify import libpq_url, listen_for_work, supports_notify
from ghlsync.engine.queue._queue import (
    AuditEntry,
    Claim,
    Claimed,
    claim,
    claim_noting_work,
    complete_in,
    dead_letter_in,
    next_due,
    queued_until,
    release,
    renew,
    retry_in,
)
from ghlsync.engine.queue._settle import Settler
from ghlsync.engine.queue._settle_pg import Completion
from ghlsync.engine.state import _pgbatch
from ghlsync.engine.state._ledger import SettleStates
from ghlsync.ghl._errors import AuthenticationError
from ghlsync.ghl._retry import backoff
from ghlsync.ghl._seams import RateLimiter
from ghlsync.mapping import AppConfig, Mapper
from ghlsync.store._raw import on_loop_or_thread

__all__ = ["SyncEvent", "Worker"]

_log = logging.getLogger("ghlsync.engine")

RECIPE_WORK = "recipe"  # the entity type of a recipe run's work row (ghlsync.engine.flows.recipes)
_THROTTLE_FLOOR = 0.5  # seconds: never spin on a paused location
PARENT_WAIT_CAP = 30.0  # seconds: the longest a child waits before it looks at its customer again
# A full worker whose item just finished waits this long before claiming, so that the items
# finishing meanwhile are claimed for in the same transaction: one claim per finished item
# cost ~11% of a busy `serve`'s CPU on SQLite (docs/benchmarks.md, "Engine end to end").
# Only when every slot was busy: a worker with room claims new work at once.
CLAIM_GATHER_S = 0.005
# Items claimed before a slot is free for them, as a share of `concurrency`: a slot that frees
# starts one of them at once, instead of waiting for a claim's round trip (and the gather
# above). One that waited longer than a third of its lease goes back to the queue unstarted:
# its lease is renewed only once it runs (`_keep_leased`).
CLAIM_AHEAD = 0.5
# Items syncing at once when neither the caller nor `worker.concurrency` says
# (`default_concurrency`).
# On PostgreSQL an item waits for several round trips to the database, each on a thread that
# takes what is queued in one statement: twice the places made those statements twice as full
# (serve shape, concurrent pairs: 1.15x the changes/s at 0.90 the CPU per change). On SQLite
# the store answers on the event loop, and 32 measured no better than 16.
DEFAULT_CONCURRENCY = {"postgresql": 32}
SQLITE_CONCURRENCY = 16
IDLE_POLL = 10.0  # seconds: the longest an idle worker sleeps when notifications wake it
DUE_FRESH_S = 1.0  # seconds a read of the next due time is reused (`_idle_timeout`)
_LISTEN_READY_TIMEOUT = 5.0
# With many locations, asking the limiter about each one before every claim costs a query per
# location per claim; its answer (paused? daily reserve left?) changes slowly, and a stale
# "yes" only means the claimed item waits in `acquire`.
BUDGET_TTL = 1.0


class Outcome(Protocol):
    """The part of the flows' `EntityOutcome` the worker records."""

    @property
    def entity_type(self) -> str: ...
    @property
    def source_id(self) -> str: ...
    @property
    def action(self) -> str: ...
    @property
    def ghl_id(self) -> str | None: ...
    @property
    def calls(self) -> int: ...


SyncEvent = Callable[[FlowContext, Any], Awaitable[Sequence[Outcome]]]
"""`sync_event(ctx, mapped) -> outcomes`: the flows' entry point (the seam tests replace)."""


def default_worker_id() -> str:
    """host:pid:random, unique per worker so leases tell workers apart."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Worker:
    """Syncs claimed work rows to GHL; `run` until stopped, or `run_once` for one batch."""

    def __init__(
        self,
        engine: sa.Engine,
        client: Any,
        mapper: Mapper,
        config: AppConfig | None = None,
        *,
        limiter: RateLimiter | None = None,
        worker_id: str | None = None,
        concurrency: int | None = None,
        clock: Clock = SYSTEM_CLOCK,
        sync_event: SyncEvent | None = None,
        rng: random.Random | None = None,
        listen: bool | None = None,
        locations: LocationDirectory | None = None,
        outbox: OutboxSender | None = None,
        token_advice: Callable[[str], str] | None = None,
    ) -> None:
        self.engine = engine
        self.client = client
        self.mapper = mapper
        self.config = config or mapper.config
        settings = self.config.worker
        self.limiter = limiter
        self.worker_id = worker_id or default_worker_id()
        self.concurrency = concurrency or settings.concurrency or default_concurrency(engine)
        self.max_attempts = settings.max_attempts
        self.lease_seconds = settings.lease_seconds
        self.poll_interval = settings.poll_interval
        self.idle_poll = IDLE_POLL
        self.listen = supports_notify(engine) if listen is None else listen
        self.heartbeat_seconds = HEARTBEAT_SECONDS
        self.clock = clock
        self._sync_event = sync_event or _flows_sync_event()
        self._rng = rng
        self.locations = locations  # per-location calendar and mapping (docs/locations.md)
        # What to do when GHL refuses a location's token: depends on where the token came from.
        self._token_advice = token_advice
        self.config_pause = CONFIG_PAUSE_SECONDS
        self._paused: dict[str, float] = {}  # location -> monotonic end of a config-error pause
        # Two-way sync: `run` also sends the write-back outbox (docs/two-way.md).
        self.outbox = outbox if outbox is not None else default_outbox(engine, self.config, clock)
        self._settler = Settler(engine)
        self._claimer = _claim_pg.for_engine(engine)  # PostgreSQL: claims on their own thread
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wakeup: asyncio.Event | None = None
        self.last_heartbeat: float | None = None
        self.processed = 0
        self.released = 0  # leases handed back by the last drain
        self._listening = False
        self._own_pids: set[int] = set()  # this engine's backends: their commits wake us at checkin
        self._state = "running"
        self._in_flight = 0
        self._started_at = clock.now()
        self._budget_seen: dict[str, tuple[float, bool]] = {}  # location -> (until, answer)
        self._with_work: list[str] = []  # the locations with work the last claim saw
        self._wakes = 0  # wake-ups so far (`_woken`)
        self._claimed_at: dict[asyncio.Task[None], int] = {}  # running item -> `_wakes` then
        # (location, customer id) -> the item of this worker that syncs that contact (`_start`).
        self._syncing_contacts: dict[tuple[str, str], asyncio.Task[None] | None] = {}
        self._settling: set[asyncio.Task[None]] = set()  # items writing their outcome only
        # Claimed, not started yet (`CLAIM_AHEAD`): (item, `_wakes` then, loop time then).
        self._ready: deque[tuple[Claim, int, float]] = deque()
        self._running: dict[asyncio.Task[None], Claim] | None = None  # `run`'s, while it runs
        self._releasing: set[asyncio.Task[None]] = set()  # `_release` of stale ready items
        self._start_soon = False  # `_start_ready` is due at the end of this loop turn
        self._early = _pgbatch.for_engine(engine)  # PostgreSQL: the ledger's early reads
        self._stop = asyncio.Event()  # `run`'s stop event, while it runs
        self._freed: asyncio.Future[None] | None = None  # set when an item begins its settle
        self._retry_due: float | None = None  # loop time the soonest retry we set comes due
        self._due_read: tuple[float, float | None] | None = None  # (monotonic, next_due then)

    async def run_once(self) -> int:
        """Claim one batch (up to `concurrency` items), process it, return how many."""
        self._beat()
        items = await self._claim(self.concurrency)
        await asyncio.gather(*self._start(items))
        return len(items)

    async def run(self, stop_event: asyncio.Event, *, drain_seconds: float | None = None) -> None:
        """Keep `concurrency` items syncing until `stop_event`; then drain. An item whose
        GHL work is done frees its place while its outcome is written (at most `concurrency`
        of those at once).

        Draining claims nothing more and waits for the items in flight, at most
        `drain_seconds` (None: as long as they take); the leases of those still unfinished
        are then released (back to pending, available at once, the attempt not counted), so
        another worker takes them over without waiting for the lease to expire.
        """
        running: dict[asyncio.Task[None], Claim] = {}
        self._running, self._stop = running, stop_event
        ahead = max(1, int(self.concurrency * CLAIM_AHEAD))
        loop = self._loop = asyncio.get_running_loop()
        self._wakeup = asyncio.Event()
        stopper = asyncio.ensure_future(stop_event.wait())
        helpers = [asyncio.ensure_future(self._heartbeats(running))]
        if self.outbox is not None:
            helpers.append(asyncio.ensure_future(self.outbox.run(stop_event)))
        sa.event.listen(self.engine, "checkout", self._on_checkout)
        sa.event.listen(self.engine, "checkin", self._on_checkin)
        sa.event.listen(self.engine, "close", self._on_close)
        try:
            if self.listen:
                helpers.append(await self._start_listener())
            look = True  # claim on this pass (else only wait)
            drained = False  # the last claim took less than it asked for: the queue is empty
            deadline = 0.0  # loop time until which a drained worker may sleep
            while not stop_event.is_set():
                self._beat()
                free = self._free_slots(running) + ahead - len(self._ready)
                if free > 0 and look:
                    wakes = self._wakes
                    got = await self._claim(free)
                    now = loop.time()
                    self._ready.extend((item, wakes, now) for item in got)
                    self._start_ready()
                    drained = len(got) < free
                    if drained:
                        deadline = loop.time() + await self._idle_timeout()
                if free > 0 and not drained:
                    look = True  # a slot is free and there may be more: claim at once
                else:  # full, or the queue is drained: wait
                    wait = deadline - loop.time() if free > 0 else self.poll_interval
                    freed = self._freed = loop.create_future()  # an item begins its settle
                    look = await self._idle({*running, stopper, freed}, wait) or free == 0
                    if free == 0:  # full: let a few more finish, claim their places together
                        await asyncio.sleep(CLAIM_GATHER_S)
                for task in [task for task in running if task.done()]:
                    del running[task]  # in place: the heartbeat task counts this dict
                    self._settling.discard(task)
                    # Drained, a finished item frees a slot but brings no work: only a
                    # delivery that came while it was leased (merged into its row, which its
                    # settle may have put back to pending) calls for a claim.
                    woken = self._claimed_at.pop(task, self._wakes) != self._wakes
                    look = look or woken  # popped first: `look or pop(...)` kept every task
                    if self._retry_due is not None:  # one of ours comes due sooner
                        deadline = min(deadline, self._retry_due)
                        self._retry_due = None
                self._start_ready()  # the places of items that ended without a settle
            self._state = "draining"
            await self._release([item for item, _, _ in self._ready], "unstarted")
            self._ready.clear()
            await self._drain(running, drain_seconds)
        except asyncio.CancelledError:
            for task in running:
                task.cancel()  # their leases expire and another worker takes over
            raise
        finally:
            stopper.cancel()
            for helper in helpers:
                helper.cancel()
            sa.event.remove(self.engine, "checkout", self._on_checkout)
            sa.event.remove(self.engine, "checkin", self._on_checkin)
            sa.event.remove(self.engine, "close", self._on_close)
            self._own_pids.clear()
            self._claimed_at.clear()
            self._ready.clear()  # (cancelled: their leases expire, as those in flight do)
            self._running = None
            await asyncio.gather(*helpers, return_exceptions=True)
            await self._forget()

    def _free_slots(self, running: dict[asyncio.Task[None], Claim]) -> int:
        """Slots for new items: an item holds one while it syncs, none while only its outcome
        is written (`_settling`), so the store's commit does not keep GHL work waiting; at
        most `concurrency` of those, so a slow store slows the claims down."""
        syncing = len(running) - len(self._settling)
        return min(self.concurrency - syncing, 2 * self.concurrency - len(running))

    def _read_early(self, read: _pgbatch.EarlyRead) -> _claim_pg.Then:
        """PostgreSQL: what a claim's job runs after it, on the claim's connection: the
        claimed DripJobs items' ID-map rows and sync states, for their flows' first `load`
        (`_pgbatch.PgBatch.early_read`)."""
        early = self._early
        assert early is not None

        def then(conn: Any, items: list[Claim]) -> None:
            keys = [
                _key(i)
                for i in items
                if i.entity_type != RECIPE_WORK and not is_ghl_work(i.entity_type)
            ]
            early.read_early(conn, read, keys)

        return then

    def _begin_settle(self) -> None:
        """The current item is done with GHL: from now on it holds no slot (`_free_slots`),
        an item claimed ahead takes it, and a worker waiting for one is told."""
        task = asyncio.current_task()
        if task is None:
            return
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)
        if not self._start_soon:  # the places freed in this turn of the loop, together
            self._start_soon = True
            asyncio.get_running_loop().call_soon(self._started_soon)
        freed = self._freed
        if freed is not None and not freed.done():
            freed.set_result(None)

    def _started_soon(self) -> None:
        self._start_soon = False
        self._start_ready()

    def _start_ready(self) -> None:
        """Start items claimed ahead in the free slots (those that waited too long for one go
        back to the queue instead)."""
        running, ready = self._running, self._ready
        if running is None or not ready or self._stop.is_set():  # stopping: they go back
            return
        loop = asyncio.get_running_loop()
        stale = loop.time() - self.lease_seconds / 3
        if ready[0][2] < stale:
            old = [entry[0] for entry in ready if entry[2] < stale]
            self._ready = ready = deque(entry for entry in ready if entry[2] >= stale)
            releasing = loop.create_task(self._release(old, "claimed ahead too long ago"))
            self._releasing.add(releasing)
            releasing.add_done_callback(self._releasing.discard)
        free = self._free_slots(running)
        if free <= 0 or not ready:
            return
        batch = [ready.popleft() for _ in range(min(free, len(ready)))]
        wakes = {item.id: woken for item, woken, _ in batch}
        started = self._start([item for item, _, _ in batch])
        running.update(started)
        self._claimed_at.update((task, wakes[item.id]) for task, item in started.items())

    async def _release(self, items: list[Claim], why: str) -> None:
        """Give unstarted items back to the queue (pending, due now, the attempt not
        counted); if that fails, their leases expire instead: slower, nothing lost."""
        if not items:
            return
        if self._early is not None:
            self._early.forget_early(_key(item) for item in items)
        try:
            released = await asyncio.to_thread(release, self.engine, items, clock=self.clock)
        except Exception:
            _log.exception("releasing %d leases (%s) failed", len(items), why)
            return
        _log.info("released %d of %d leases: %s", released, len(items), why)

    async def _drain(
        self, running: dict[asyncio.Task[None], Claim], drain_seconds: float | None
    ) -> None:
        if not running:
            return
        self._in_flight = len(running)
        await self._write_heartbeat()  # status shows this worker draining
        _, unfinished = await asyncio.wait(running, timeout=drain_seconds)
        if not unfinished:
            return
        for task in unfinished:
            task.cancel()
        await asyncio.gather(*unfinished, return_exceptions=True)
        items = [running[task] for task in unfinished]
        try:
            self.released = await asyncio.to_thread(release, self.engine, items, clock=self.clock)
        except Exception:  # their leases expire instead: slower, nothing lost
            _log.exception("releasing %d leases failed", len(items))
            return
        _log.info("drain bound reached: released %d of %d leases", self.released, len(items))

    def wake(self) -> None:
        """New work was committed in this process: claim now, not at the next poll.

        Safe to call from any thread (the receiver calls it after its commit); a no-op when
        the worker is not running.
        """
        loop, wakeup = self._loop, self._wakeup
        if loop is not None and wakeup is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._woken)

    def _woken(self) -> None:
        """On the loop: claim now, and count the wake-up (items leased before it may have
        had a delivery merged into their rows)."""
        self._wakes += 1
        if self._wakeup is not None:
            self._wakeup.set()

    def _on_checkout(self, dbapi_conn: Any, *_: Any) -> None:
        # Before the connection can commit anything: its NOTIFYs are then passed over
        # (`_own_notify`), its commits waking us at checkin instead.
        if self.listen:
            pid = _backend_pid(dbapi_conn)
            if pid is not None:
                self._own_pids.add(pid)

    def _on_checkin(self, _dbapi_conn: Any, record: Any) -> None:
        # A connection of this engine went back to the pool: its transaction is over. If it
        # accepted deliveries (a receiver in this process), claim them now: on PostgreSQL
        # sooner than the same commit's NOTIFY comes back over the listening connection.
        # That NOTIFY is passed over (`_own_notify`, by the sending backend's pid, known
        # from the checkout): a second wake-up per commit would look like a delivery merged
        # into an item in flight, and cost a claim (`run`).
        info = getattr(record, "info", None)
        if info is not None and info.pop(ACCEPTED_FLAG, False):
            self.wake()

    def _on_close(self, dbapi_conn: Any, *_: Any) -> None:
        # A closed connection's pid may be given to another process's backend: whose
        # notifications must wake us.
        pid = _backend_pid(dbapi_conn)
        if pid is not None:
            self._own_pids.discard(pid)

    def _own_notify(self, pid: int) -> bool:
        """The notification came from a connection of this engine (checked out while we
        ran), whose commits wake us at checkin (`_on_checkin`)."""
        return pid in self._own_pids

    async def _start_listener(self) -> asyncio.Task[None]:
        """LISTEN for work committed anywhere; wait (briefly) until it is in place, so that
        nothing committed after our first claim can go unnoticed."""
        ready = asyncio.Event()
        task = asyncio.ensure_future(
            listen_for_work(
                libpq_url(self.engine),
                self._on_notify,
                ready=ready,
                on_lost=self._on_lost,
                skip=self._own_notify,
            )
        )
        try:
            await asyncio.wait_for(ready.wait(), _LISTEN_READY_TIMEOUT)
        except TimeoutError:
            _log.warning("LISTEN is not in place yet; polling every %ss", self.poll_interval)
        return task

    def _on_notify(self, location: str | None) -> None:
        # None: (re)connected. Either way claim now; the claim itself is fair across locations.
        self._listening = True
        self._woken()

    def _on_lost(self) -> None:
        self._listening = False  # poll every `poll_interval` until the LISTEN is back

    async def _idle(self, waits: set[asyncio.Future[Any]], seconds: float) -> bool:
        """Until an item finishes, the stop, a wake-up, or `seconds` (the next due time:
        retries coming due, expired leases; without notifications `poll_interval`).

        True when woken or timed out (look for work), False when only `waits` ended."""
        assert self._wakeup is not None
        waker = asyncio.ensure_future(self._wakeup.wait())
        try:
            done, _ = await asyncio.wait(
                {*waits, waker}, timeout=max(0.0, seconds), return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            waker.cancel()
        # Read before clearing, with no await between: a wake-up that came in the same loop
        # turn as a finished item (its waker not run yet) still counts.
        woken = self._wakeup.is_set() or not done
        self._wakeup.clear()
        return woken

    async def _idle_timeout(self) -> float:
        """How long an idle worker may sleep: until the next item comes due, at most
        `idle_poll`, when notifications wake it; else `poll_interval`.

        The next due time read from the store is reused for `DUE_FRESH_S`: a worker woken
        for every few deliveries drains after each claim, and reading it each time cost a
        statement and a thread hand-off per claim, in the way of the next wake-up. What it
        can miss meanwhile is another process's retry or lease expiry, seen at most
        `DUE_FRESH_S` later; this worker's own retries are tracked apart (`_retry_due`)."""
        if not (self.listen and self._listening):
            return self.poll_interval
        now = self.clock.monotonic()
        if self._due_read is not None and now - self._due_read[0] < DUE_FRESH_S:
            due = self._due_read[1]
        else:
            try:
                due = await asyncio.to_thread(next_due, self.engine)
            except Exception:
                _log.exception("reading the next due time failed")
                return self.poll_interval
            self._due_read = (now, due)
        if due is None:
            return self.idle_poll
        delay = due - self.clock.now()
        if delay <= 0:  # due work we could not take (no rate budget): look again soon
            return self.poll_interval
        return min(self.idle_poll, delay + 0.01)

    async def _heartbeats(self, running: dict[asyncio.Task[None], Claim]) -> None:
        """Refresh this worker's row in `workers` every `heartbeat_seconds`."""
        with contextlib.suppress(Exception):
            await asyncio.to_thread(prune, self.engine, now=self.clock.now())
        while True:
            self._in_flight = sum(1 for task in running if not task.done())
            await self._write_heartbeat()
            await asyncio.sleep(self.heartbeat_seconds)

    async def _write_heartbeat(self) -> None:
        try:
            await asyncio.to_thread(
                beat,
                self.engine,
                self.worker_id,
                now=self.clock.now(),
                started_at=self._started_at,
                state=self._state,
                in_flight=self._in_flight,
                processed=self.processed,
            )
        except Exception:  # status shows a stale worker; the work itself goes on
            _log.exception("writing the worker heartbeat failed")

    async def _forget(self) -> None:
        try:
            await asyncio.to_thread(forget, self.engine, self.worker_id)
        except Exception:
            _log.exception("removing the worker heartbeat failed")

    def _start(self, items: Sequence[Claim]) -> dict[asyncio.Task[None], Claim]:
        """Start a batch: contacts first, then the rest.

        A task, note or appointment needs its contact in GHL first. One from DripJobs starts
        at once; if its contact is not there yet and an item of this worker is syncing it,
        it waits for that item and runs again (`_sync_after_parent`), which saves it a retry
        with backoff, and the children of contacts synced long ago never wait. One from GHL
        (two-way) waits for the batch's GHL contacts to be settled.
        """
        parents = {asyncio.ensure_future(self._process(i)): i for i in items if _is_parent(i)}
        # A finished one is kept as None until the next batch: a child whose lookup was
        # answered just before its contact's item finished runs again at once.
        syncing = self._syncing_contacts = {
            key: task for key, task in self._syncing_contacts.items() if task is not None
        }
        for task, item in parents.items():
            if item.entity_type == "contact":
                key = (item.location_id, item.source_id)
                syncing[key] = task
                task.add_done_callback(functools.partial(self._parent_done, key))
        after = [task for task, item in parents.items() if is_ghl_work(item.entity_type)]
        children = {
            asyncio.ensure_future(
                self._process(i, after=after if is_ghl_work(i.entity_type) else ())
            ): i
            for i in items
            if not _is_parent(i)
        }
        return parents | children

    def _beat(self) -> None:
        self.last_heartbeat = self.clock.now()

    async def _claim(self, limit: int) -> list[Claim]:
        """Up to `limit` items, only of locations that may go (not paused; with a limiter,
        its answer "has budget", at most BUDGET_TTL old).

        Which locations have work comes with each claim (`claim_noting_work`: on PostgreSQL
        the claim's own statement) and is used by the next one: the limiter is asked about
        those first (the stale answers), then the claim takes from every location that may
        go. A location with work the claim saw but had no answer for (new since the last
        claim, or its answer had expired) is asked about at once and, if it may go and the
        batch has room, claimed from in a second claim."""
        batch = self._early
        early = batch.early_read() if batch is not None else None
        then = self._read_early(early) if early is not None else None
        try:
            now = self.clock.monotonic()
            self._paused = {loc: end for loc, end in self._paused.items() if end > now}
            if self.limiter is None and not self._paused:  # every location may go
                if self._claimer is not None:
                    return await self._claimer.claim(
                        self.worker_id, None, limit, self.lease_seconds, self.clock.now, then
                    )
                return await on_loop_or_thread(
                    self.engine,
                    lambda bind: claim(
                        bind, self.worker_id, None, limit, self.lease_seconds, clock=self.clock
                    ),
                )
            allowed = await self._may_go(self._with_work, now)
            got = await self._claim_noting(allowed, limit, then)
            newly = [loc for loc in await self._may_go(got.with_work, now) if loc not in allowed]
            if not newly or len(got.items) >= limit:
                return got.items
            more = await self._claim_noting(newly, limit - len(got.items), then)
            return got.items + more.items
        except Exception:  # the store is unreachable: try again on the next poll
            _log.exception("claiming work failed")
            return []
        finally:
            if batch is not None and early is not None:
                batch.seed(early)

    async def _claim_noting(
        self, locations: list[str], limit: int, then: _claim_pg.Then | None = None
    ) -> Claimed:
        if self._claimer is not None:  # PostgreSQL: on the claim's own thread (`_claim_pg`)
            got = await self._claimer.claim_noting(
                self.worker_id, locations, limit, self.lease_seconds, self.clock.now, then
            )
        else:
            got = await on_loop_or_thread(
                self.engine,
                lambda bind: claim_noting_work(
                    bind, self.worker_id, locations, limit, self.lease_seconds, clock=self.clock
                ),
            )
        self._with_work = got.with_work
        return got

    async def _may_go(self, with_work: Sequence[str], now: float) -> list[str]:
        """The locations a claim may take from: without a limiter, those of `with_work` not
        paused; with one, every location not paused whose answer is "has budget", after
        asking again about those of `with_work` with no answer younger than BUDGET_TTL."""
        paused = self._paused
        if self.limiter is None:
            return [loc for loc in with_work if loc not in paused]
        seen = self._budget_seen = {k: v for k, v in self._budget_seen.items() if v[0] > now}
        stale = [loc for loc in with_work if loc not in seen and loc not in paused]
        if stale:  # asked together, at most once per location per BUDGET_TTL
            limiter = self.limiter
            answers = await asyncio.gather(*(limiter.has_budget(loc) for loc in stale))
            for loc, answer in zip(stale, answers, strict=True):
                seen[loc] = (now + BUDGET_TTL, answer)
        return sorted(loc for loc, (_, answer) in seen.items() if answer and loc not in paused)

    async def _process(self, item: Claim, after: Sequence[asyncio.Task[None]] = ()) -> None:
        """Sync one item and settle its row; never raises (a failed settle leaves the lease to
        expire, so the item is retried by whichever worker claims it next)."""
        if after:
            await asyncio.wait(after)
        # Every log line of this item's sync (ours, the flows', the GHL client's) says which.
        # Bound in this task's own context (`_start` runs each item in a task of its own, which
        # copied the context it was made in), so it ends with the task: nothing to unbind.
        # structlog's `bound_contextvars` would copy and scan the whole context to restore it.
        structlog.contextvars.bind_contextvars(**_log_context(item))
        try:
            await self._settle(item)
        except Exception:
            _log.exception("settling work item %s failed", item.id)
        self.processed += 1

    async def _settle(self, item: Claim) -> None:
        if item.attempts > self.max_attempts:
            reason = "its worker stopped (crash or kill) during every attempt"
            await self._dead(item, Failure("dead", gave_up(reason, item.attempts - 1), "Lost"))
            return
        states = SettleStates()  # what the flows `record`, `confirm`: written with the settle
        try:
            await self._sync_and_settle(item, states)
        finally:  # settled or not, the store now shows what it holds
            states.release()
            if self._early is not None:  # written by the settle, or never loaded
                self._early.forget_early([_key(item), *states.keys()])

    async def _sync_and_settle(self, item: Claim, states: SettleStates) -> None:
        keeper = Later(self.lease_seconds / 3, functools.partial(self._keep_leased, item))
        failure: Failure | None = None
        waited: float | None = None
        try:
            outcomes = await self._sync_after_parent(item, states)
        except _EventFailed as failed:
            failure = classify_failure(
                failed.error,
                entity_type=item.entity_type,
                event=failed.event,
                token_fix=await self._fix_for(failed.error, item.location_id),
            )
            if failure.kind == "retry" and isinstance(failed.error, ParentNotSyncedError):
                waited = await self._parent_due(item, failed.error)
        finally:
            keeper.cancel()
        self._begin_settle()
        if failure is not None and waited is not None:
            reason = f"{failure.reason}; its own work item is still queued: waiting for it"
            failure = Failure("waiting", reason, failure.error_class)
            await self._retry(item, failure, waited, states, counts=False, action="waiting")
            return
        if failure is not None:
            await self._fail(item, failure, states)
            return
        audit = [_audit(outcome) for outcome in outcomes] or [AuditEntry("synced")]
        await self._complete(item, audit, states)

    def _parent_done(self, key: tuple[str, str], task: asyncio.Task[None]) -> None:
        if self._syncing_contacts.get(key) is task:
            self._syncing_contacts[key] = None

    async def _sync_after_parent(self, item: Claim, states: SettleStates) -> list[Outcome]:
        """`_sync`; a child whose contact is not in GHL yet while an item of this worker is
        syncing that contact (or just did) waits for the item (settled, or failed) and runs
        once more. The first run stopped at the contact's lookup, before any write of its
        own."""
        try:
            return await self._sync(item, states)
        except _EventFailed as failed:
            error = failed.error
            if not isinstance(error, ParentNotSyncedError) or not error.customer_id:
                raise
            key = (item.location_id, error.customer_id)
            if key not in self._syncing_contacts:
                raise
            parent = self._syncing_contacts[key]
        if parent is not None:
            await asyncio.wait([parent])
        return await self._sync(item, states)

    async def _parent_due(self, item: Claim, error: ParentNotSyncedError) -> float | None:
        """Seconds to wait for the customer a child needs, while the customer's own work item
        is still queued (then the attempt is not counted: however long a location out of
        budget or a dead worker's lease keeps the customer, the child is not given up on);
        None when it is not queued (its retries count, and run out, as before)."""
        if not error.customer_id:
            return None
        try:
            due = await asyncio.to_thread(
                queued_until,
                self.engine,
                item.location_id,
                "contact",
                error.customer_id,
                not_id=item.id,
            )
        except Exception:  # the store is unreachable: the ordinary retry
            _log.exception("reading the work item of customer %s failed", error.customer_id)
            return None
        if due is None:
            return None
        wait = min(max(due - self.clock.now(), 0.0), PARENT_WAIT_CAP)
        return wait + backoff(1, rng=self._rng)  # jitter: its siblings do not come back together

    async def _fix_for(self, error: Exception, location_id: str) -> str | None:
        """The advice for a refused token (401); None for every other error."""
        advice = self._token_advice
        if advice is None or not isinstance(error, AuthenticationError) or error.status != 401:
            return None
        try:
            return await asyncio.to_thread(advice, location_id)
        except Exception:  # advice only: the default words stand
            _log.exception("finding the advice for a refused token failed")
            return None

    async def _keep_leased(self, item: Claim) -> None:
        """Renew the lease while the item is in flight (a slow GHL must not hand it to another
        worker): at once (started a third of a lease after the item, `Later`), then every third
        of a lease. Paced on the event loop's own time, not `self.clock`: a test's fake clock
        would turn this loop into a spin."""
        while True:
            try:
                renewed = await asyncio.to_thread(
                    renew, self.engine, item, self.lease_seconds, clock=self.clock
                )
            except Exception:
                _log.exception("renewing the lease of work item %s failed", item.id)
            else:
                if renewed is None:
                    _log.warning("work item %s: lease lost to another worker", item.id)
                    return
            await asyncio.sleep(self.lease_seconds / 3)

    async def _sync(self, item: Claim, states: SettleStates) -> list[Outcome]:
        """Run every pending event of the entity, in order, on its merged payload."""
        if is_ghl_work(item.entity_type):
            return await self._sync_ghl(item, states)
        mapper, calendar_id, config = self.mapper, self.config.ghl.calendar_id, self.config
        if self.locations is not None:
            try:  # raises LocationUninstalledError (retriable: kept for a reinstall)
                place = await self.locations.active(item.location_id)
            except Exception as error:
                raise _EventFailed(item.event, error) from error
            mapper, calendar_id, config = place.mapper, place.calendar_id, place.config
        context = FlowContext(
            engine=self.engine,
            client=self.client,
            location_id=item.location_id,
            calendar_id=calendar_id,
            config=config,
            clock=self.clock,
            settle=states,
        )
        if item.entity_type == RECIPE_WORK:
            return await self._recipes(context, None, item)
        outcomes: list[Outcome] = []
        if item.entity_type in ("contact", "appointment") and self.outbox is not None:
            await self._link_echo(mapper, item)
        for event in item.events:
            try:
                mapped = mapper.map(event, item.payload)
                outcomes.extend(await self._sync_event(context, mapped))
            except Exception as error:
                raise _EventFailed(event, error) from error
        return outcomes + await self._recipes(context, mapper, item)

    async def _recipes(
        self, context: FlowContext, mapper: Mapper | None, item: Claim
    ) -> list[Outcome]:
        """Recipes (docs/recipes.md): run a claimed recipe row, or, once an item synced,
        queue the recipe runs its deliveries start. Skipped when the config has none."""
        if item.entity_type != RECIPE_WORK and not _enabled_recipes(context.config):
            return []
        from ghlsync.engine.flows.recipes._hook import after_event, run_item

        try:
            if item.entity_type == RECIPE_WORK:
                return list(await run_item(context, item))
            await after_event(context, mapper, item)
        except Exception as error:
            raise _EventFailed(item.event, error) from error
        return []

    async def _link_echo(self, mapper: Mapper, item: Claim) -> None:
        """Two-way: a DripJobs customer made by our own write-back links to its GHL contact
        (no GHL write, no second write-back; `flows.to_dripjobs._link`)."""
        try:
            await link_echo(
                self.engine,
                mapper,
                self.clock,
                location_id=item.location_id,
                source_id=item.source_id,
                event=item.events[0],
                payload=item.payload,
            )
        except Exception as error:
            raise _EventFailed(item.event, error) from error
        finally:  # it may have written the item's mapping: its early read is out of date
            if self._early is not None:
                self._early.forget_early([_key(item)])

    async def _sync_ghl(self, item: Claim, states: SettleStates) -> list[Outcome]:
        """A GHL event: decide the write-back (`flows.to_dripjobs`); no GHL call but the
        pipeline list when a moved card's stage is not kept yet."""
        config = self.config
        try:
            if self.locations is not None:
                config = (await self.locations.active(item.location_id)).config
            outcomes = await sync_ghl(
                self.engine,
                config.writeback,
                self.clock,
                location_id=item.location_id,
                entity_type=item.entity_type,
                ghl_id=item.source_id,
                events=item.events,
                payload=item.payload,
                version=item.source_updated_at,
                opportunities=config.opportunities,
                client=self.client,
            )
        except Exception as error:
            raise _EventFailed(item.event, error) from error
        if self.outbox is not None and any(o.action == "written_back" for o in outcomes):
            self.outbox.wake()  # committed: send it now, not at the next poll
        context = FlowContext(
            self.engine, self.client, item.location_id, self.config.ghl.calendar_id, config,
            self.clock, states,
        )  # fmt: skip
        return [*outcomes, *await self._recipes(context, None, item)]

    async def _fail(self, item: Claim, failure: Failure, states: SettleStates) -> None:
        """Settle a failed item; what its events synced before the failure is recorded."""
        if failure.kind == "skip":
            note = AuditEntry("skipped", detail=failure.reason)
            await self._complete(item, [note], states)
        elif failure.kind == "throttled":
            self._budget_seen.pop(item.location_id, None)  # paused now: ask again next claim
            await self._retry(item, failure, await self._pause_left(item), states, counts=False)
        elif failure.kind == "paused":
            self._pause(item.location_id, failure)
            await self._retry(
                item, failure, self.config_pause, states, counts=False, action="paused"
            )
        elif failure.kind == "dead":
            await self._dead(item, failure, states)
        elif item.attempts >= self.max_attempts:
            reason = gave_up(failure.reason, item.attempts)
            await self._dead(item, Failure("dead", reason, failure.error_class), states)
        else:
            delay = backoff(item.attempts, rng=self._rng)
            await self._retry(item, failure, delay, states, counts=True)

    async def _complete(
        self, item: Claim, audit: Sequence[AuditEntry], states: SettleStates
    ) -> None:
        now = self.clock.now()
        await self._settler.run(
            lambda conn: _with_states(conn, complete_in(conn, item, audit, now), states),
            Completion(item, audit, now, states.rows(), states.maps()),
            driver_level=True,  # `complete_in` and `write_in` run at the driver level
        )
        _count(item, audit, now)

    def _pause(self, location_id: str, failure: Failure) -> None:
        """A configuration error: claim nothing of the location until the pause ends (every
        item would fail the same way), and say so once per pause, not once per item."""
        if location_id not in self._paused:
            _log.error("location %s paused: %s", location_id, failure.reason)
        self._paused[location_id] = self.clock.monotonic() + self.config_pause

    async def _retry(
        self,
        item: Claim,
        failure: Failure,
        delay: float,
        states: SettleStates,
        *,
        counts: bool,
        action: str | None = None,
    ) -> None:
        note = [AuditEntry(action or ("retry" if counts else "throttled"), detail=failure.reason)]
        now = self.clock.now()
        await self._settler.run(
            lambda conn: _with_states(
                conn, retry_in(conn, item, failure.reason, delay, counts, note, now), states
            )
        )
        if self._loop is not None:  # a drained worker wakes for it (`run`)
            due = self._loop.time() + delay + 0.01
            self._retry_due = due if self._retry_due is None else min(self._retry_due, due)
        _count(item, note, None)

    async def _dead(
        self, item: Claim, failure: Failure, states: SettleStates | None = None
    ) -> None:
        note = [AuditEntry("dead", detail=failure.reason)]
        now = self.clock.now()
        reason, error_class = failure.reason, failure.error_class
        await self._settler.run(
            lambda conn: _with_states(
                conn, dead_letter_in(conn, item, reason, error_class, note, now), states
            )
        )
        _count(item, note, None)
        _log.warning(
            "dead letter: location %s, %s %s, event %s: %s",
            item.location_id,
            item.entity_type,
            item.source_id,
            ",".join(item.events),
            failure.reason,
        )

    async def _pause_left(self, item: Claim) -> float:
        """Seconds until the location's 429 pause ends (the limiter knows), at least a floor."""
        if self.limiter is None:
            return backoff(1, rng=self._rng)
        budget = await self.limiter.budget(item.location_id)
        return max(_THROTTLE_FLOOR, budget.paused_until - self.clock.now())


class _EventFailed(Exception):
    """Which of an item's events failed, so the reason names the right one."""

    def __init__(self, event: str, error: Exception) -> None:
        super().__init__(event)
        self.event = event
        self.error = error


def _enabled_recipes(config: Any) -> bool:
    """Cheap: does the config enable any recipe (the shipped ones come switched off)."""
    raw = getattr(config, "recipes", None) or []
    return any(not isinstance(e, dict) or e.get("enabled", True) is not False for e in raw)


def _backend_pid(dbapi_conn: Any) -> int | None:
    """A psycopg connection's server process id; None for other drivers or a closed one."""
    try:
        pid = dbapi_conn.info.backend_pid
    except Exception:  # SQLite's connections have no `info`; a closed one has no backend
        return None
    return pid if isinstance(pid, int) and pid > 0 else None


def default_concurrency(engine: sa.Engine) -> int:
    """Items syncing at once when `worker.concurrency` is unset: 32 on PostgreSQL, 16 on
    SQLite (`DEFAULT_CONCURRENCY`)."""
    return DEFAULT_CONCURRENCY.get(engine.dialect.name, SQLITE_CONCURRENCY)


def _key(item: Claim) -> tuple[str, str, str]:
    return item.location_id, item.entity_type, item.source_id


def _is_parent(item: Claim) -> bool:
    return item.entity_type in ("contact", "ghl_contact")


def _log_context(item: Claim) -> dict[str, Any]:
    """The fields every log line of `item`'s sync carries (docs/observability.md)."""
    delivery = item.payload.get("delivery_id") if isinstance(item.payload, dict) else None
    return {
        "location": item.location_id,
        "event_type": item.event,  # not `event`: structlog's key for the message
        "entity": item.entity_type,
        "entity_id": item.source_id,
        "delivery_id": None if delivery is None else str(delivery),
        "work_id": item.id,
    }


def _with_states(conn: sa.Connection, settled: bool, states: SettleStates | None) -> bool:
    """After the item's row was settled in `conn`'s transaction: the sync states its flows
    recorded, in that same transaction. Not when the lease was lost (`settled` False):
    another worker has the item, and its own, newer states must not be overwritten."""
    if settled and states is not None:
        states.write_in(conn)
    return settled


def _count(item: Claim, audit: Sequence[AuditEntry], now: float | None) -> None:
    """Metrics of a settled item: its outcomes and, when synced (`now`) after its only
    delivery, the time since the webhook arrived (a merged row's `created_at` is older)."""
    for entry in audit:
        SYNC_METRICS.outcome(entry.entity_type or item.entity_type, entry.action)
    if now is not None and item.generation == 1 and item.created_at is not None:
        SYNC_METRICS.synced(item.entity_type, now - item.created_at)


def _audit(outcome: Outcome) -> AuditEntry:
    return AuditEntry(
        action=outcome.action,
        entity_type=outcome.entity_type,
        source_id=outcome.source_id,
        ghl_id=outcome.ghl_id,
        calls=outcome.calls,
        detail=str(getattr(outcome, "detail", "") or ""),
    )


def _flows_sync_event() -> SyncEvent:
    # Imported late: the flows import the GHL client and the mapping, which the queue's users
    # (the receiver) do not need.
    from ghlsync.engine.flows.to_ghl._dispatch import sync_event

    return sync_event
