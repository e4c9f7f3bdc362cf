"""The periodic sweep of `ghlsync serve`: every location, every `reconcile.every`.

One background task walks the locations one at a time (a sweep is paced to `reconcile.budget`
of a location's rate limit and takes its turn from the shared limiter, so live sync is never
starved; it only awaits, so it never blocks the event loop). A location is due when it has
never been swept, when `every` has passed since its last sweep ended, or when a sweep was cut
off (a restart): that one walks on from its stored cursor (`_progress`), knowing the mapped
contacts walked before the cut, so it still finds deleted ones. Stopping cancels the
sweep in flight; its cursor stays, for the next start. Several `serve` processes on one store
claim each sweep first, so a location is swept by one of them at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from ghlsync._clock import SYSTEM_CLOCK, Clock
from ghlsync.mapping._reconcile_settings import ReconcileSettings
from ghlsync.reconcile import _progress
from ghlsync.reconcile._sweep import Sweep, SweepReport
from ghlsync.store._tables_locations import locations as locations_table

__all__ = ["SweepSchedule", "sweep_locations"]

_log = logging.getLogger("ghlsync.reconcile")

RETRY_AFTER = 300.0  # a sweep that failed (GHL down, no token) is tried again this much later
IDLE_AT_MOST = 60.0  # look for new locations this often even when nothing is due
LEASE = 900.0  # a sweep whose heartbeat is this old was cut off (SIGKILL): another takes it


def sweep_locations(engine: sa.Engine, configured: str | None) -> list[str]:
    """The locations to sweep: `ghl.location_id` and every installed (active) location."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(locations_table.c.location_id).where(locations_table.c.status == "active")
        ).scalars()
        found = set(rows)
    if configured:
        found.add(configured)
    return sorted(found)


class SweepSchedule:
    """Runs due sweeps until `stop` is set (see the module docstring)."""

    def __init__(
        self,
        engine: sa.Engine,
        client: Any,
        settings: ReconcileSettings,
        locations: Callable[[], list[str]],
        *,
        clock: Clock = SYSTEM_CLOCK,
        page_size: int | None = None,
    ) -> None:
        self._engine = engine
        self._client = client
        self._settings = settings
        self._locations = locations
        self._clock = clock
        self._page_size = page_size
        self._failed_at: dict[str, float] = {}
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.reports: list[SweepReport] = []  # sweeps ended by this process, oldest first

    async def run(self, stop: asyncio.Event) -> None:
        """Sweep what is due, wait for the next due time; return soon after `stop` is set."""
        while not stop.is_set():
            try:
                wait = await self._round(stop)
            except Exception:  # the store went away for a moment: never take `serve` down
                _log.exception("reconcile: could not plan the sweeps")
                wait = RETRY_AFTER
            await _until(stop, self._clock.sleep(wait))

    async def _round(self, stop: asyncio.Event) -> float:
        """Sweep every due location; seconds until the next one is due."""
        wait = IDLE_AT_MOST
        names = await asyncio.to_thread(self._locations)
        for location in names:
            if stop.is_set():
                break
            state = await asyncio.to_thread(_progress.load, self._engine, location)
            due_in = self._due_in(location, state)
            if due_in <= 0:
                await _until(stop, self._claimed(location))
                due_in = self._due_in(
                    location, await asyncio.to_thread(_progress.load, self._engine, location)
                )
            wait = min(wait, max(due_in, 0.0))
        return wait

    def _due_in(self, location: str, state: _progress.SweepState | None) -> float:
        now = self._clock.now()
        failed = self._failed_at.get(location)
        retry = 0.0 if failed is None else failed + RETRY_AFTER - now
        if state is None or state.finished_at is None:
            return retry
        return max(retry, state.finished_at + self._settings.every - now)

    async def _claimed(self, location: str) -> None:
        """Claim the location's sweep and run it; released when this process stops."""
        try:
            state = await asyncio.to_thread(
                _progress.claim,
                self._engine,
                location,
                self.owner,
                now=self._clock.now(),
                every=self._settings.every,
                lease=LEASE,
            )
            if state is None:  # not due after all, or another process sweeps it
                self._failed_at[location] = self._clock.now()  # look again later
                return
            await self._sweep(location, state)
        except asyncio.CancelledError:  # shutdown: a restarted process walks on at once
            _progress.release(self._engine, location, self.owner)
            raise

    async def _sweep(self, location: str, state: _progress.SweepState) -> None:
        """One sweep, resumed from the stored cursor when the last one was cut off."""

        async def _on_page(cursor: Any, seen: int, mapped_ids: list[str]) -> None:
            await asyncio.to_thread(
                _progress.checkpoint,
                self._engine,
                location,
                cursor,
                seen,
                self._clock.now(),
                mapped_ids,
            )

        walked = await asyncio.to_thread(_progress.seen_ids, self._engine, location)

        options: dict[str, Any] = {"page_size": self._page_size} if self._page_size else {}
        sweep = Sweep(
            self._engine,
            self._client,
            location,
            budget=self._settings.budget,
            clock=self._clock,
            resume_from=state.cursor,
            resume_seen=state.contacts_seen,
            resume_ids=walked if state.cursor is not None else (),
            on_page=_on_page,
            **options,
        )
        try:
            report = await sweep.run(repair=self._settings.repair)
        except Exception as exc:  # logged; the cursor stays, the next try walks on from it
            self._failed_at[location] = self._clock.now()
            _log.warning("reconcile: the sweep of %s stopped: %s", location, exc)
            return
        self._failed_at.pop(location, None)
        await asyncio.to_thread(_finish, self._engine, report)
        self.reports.append(report)
        counts = report.counts()
        _log.info(
            "reconcile: %s swept, %d contacts, %s",
            location,
            report.contacts_seen,
            ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "no drift",
        )


def _finish(engine: sa.Engine, report: SweepReport) -> None:
    _progress.finish(
        engine,
        report.location_id,
        findings=report.counts(),
        contacts_seen=report.contacts_seen,
        complete=report.complete,
        now=report.finished_at,
    )


async def _until(stop: asyncio.Event, work: Any) -> None:
    """Run `work` until it ends or `stop` is set, whichever comes first (then cancel it)."""
    task = asyncio.ensure_future(work)
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for pending in (task, stopper):
            if not pending.done():
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pending
    failure = task.exception() if task.done() and not task.cancelled() else None
    if failure is not None:
        raise failure
