"""The outbox sender: POSTs due write-backs, signed, and records each answer.

At-least-once: a row is settled only after its answer, so a crash re-sends it (same body,
same `webhook-id`: the receiver dedupes). Answers: 2xx delivered; 429 (honouring
`Retry-After` seconds), 5xx, timeouts and transport errors are retried with full-jitter
backoff; any other 4xx is a dead letter at once (the Zap refuses it as it is); after
`writeback.max_attempts` attempts, a dead letter. `ghlsync serve` and `ghlsync worker` run one
sender each (`Worker.run`); `drain_once` sends what is due now (tests, demo).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable

import httpx2
import sqlalchemy as sa

from ghlsync._clock import SYSTEM_CLOCK, Clock
from ghlsync._metrics import SYNC_METRICS
from ghlsync.dripjobs._writeback import writeback_headers
from ghlsync.engine.outbox._store import (
    OutboxItem,
    claim_due,
    mark_dead,
    mark_delivered,
    mark_retry,
)
from ghlsync.ghl._retry import backoff
from ghlsync.mapping._writeback import WritebackSettings

__all__ = ["OutboxSender", "default_outbox", "writeback_enabled"]

_log = logging.getLogger("ghlsync.outbox")
LEASE_SECONDS = 60.0
MAX_RETRY_AFTER = 3600.0


class OutboxSender:
    """Sends the write-back outbox of one store."""

    def __init__(
        self,
        engine: sa.Engine,
        settings: WritebackSettings,
        *,
        clock: Clock = SYSTEM_CLOCK,
        transport: httpx2.AsyncBaseTransport | None = None,
        owner: str = "outbox",
        batch: int = 16,
        poll_interval: float = 0.5,
        lease_seconds: float = LEASE_SECONDS,
        rng: random.Random | None = None,
        on_sent: Callable[[OutboxItem], None] | None = None,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.clock = clock
        self.owner = owner
        self.batch = batch
        self.poll_interval = poll_interval
        self.lease_seconds = lease_seconds
        self._transport = transport
        self._rng = rng
        self._on_sent = on_sent  # test seam: called after the POST answered, before recording
        self.delivered = 0
        self._wakeup: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def wake(self) -> None:
        """Write-backs were queued: send now, not at the next poll. Thread-safe; a no-op when
        the sender is not running."""
        loop, wakeup = self._loop, self._wakeup
        if loop is not None and wakeup is not None and not loop.is_closed():
            loop.call_soon_threadsafe(wakeup.set)

    async def run(self, stop: asyncio.Event) -> None:
        """Send due write-backs until `stop` is set; idle, poll every `poll_interval` or wake
        at once on `wake()`."""
        self._loop, self._wakeup = asyncio.get_running_loop(), asyncio.Event()
        async with self._client() as client:
            while not stop.is_set():
                self._wakeup.clear()
                try:
                    sent = await self._once(client)
                except Exception:  # the store is unreachable: try again later
                    _log.exception("sending the write-back outbox failed")
                    sent = 0
                if sent == 0:
                    await self._idle(stop)
        self._loop = self._wakeup = None

    async def _idle(self, stop: asyncio.Event) -> None:
        assert self._wakeup is not None
        waits = {asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wakeup.wait())}
        try:
            await asyncio.wait(
                waits, timeout=self.poll_interval, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for waiter in waits:
                waiter.cancel()

    async def drain_once(self) -> int:
        """Send every write-back due now, once; how many were attempted."""
        async with self._client() as client:
            return await self._once(client)

    def _client(self) -> httpx2.AsyncClient:
        return httpx2.AsyncClient(transport=self._transport, timeout=self.settings.timeout)

    async def _once(self, client: httpx2.AsyncClient) -> int:
        items = await asyncio.to_thread(
            claim_due,
            self.engine,
            self.owner,
            self.batch,
            self.lease_seconds,
            now=self.clock.now(),
        )
        await asyncio.gather(*(self._send(client, item) for item in items))
        return len(items)

    async def _send(self, client: httpx2.AsyncClient, item: OutboxItem) -> None:
        url = self.settings.url(item.action)
        if url is None:
            await self._dead(item, None, f"no URL configured for {item.action} any more")
            return
        secret = self.settings.secret.reveal() if self.settings.secret is not None else None
        headers = writeback_headers(secret, item.id, int(self.clock.now()), item.body)
        started = time.perf_counter()  # metrics: write-back delivery duration
        try:
            response = await client.post(url, content=item.body, headers=headers)
            SYNC_METRICS.writeback_sent(item.action, time.perf_counter() - started)
        except httpx2.HTTPError as exc:
            await self._retry(item, None, f"{type(exc).__name__}: {exc}", None)
            return
        if self._on_sent is not None:
            self._on_sent(item)
        status = response.status_code
        if 200 <= status < 300:
            now = self.clock.now()
            if await asyncio.to_thread(mark_delivered, self.engine, item, status, now=now):
                self.delivered += 1
                SYNC_METRICS.writeback(item.action, "delivered")
        elif status == 429 or status >= 500:
            wait = _retry_after(response.headers.get("retry-after")) if status == 429 else None
            await self._retry(item, status, f"{status} {response.text[:200]}", wait)
        else:
            await self._dead(item, status, f"refused: {status} {response.text[:200]}")

    async def _retry(
        self, item: OutboxItem, status: int | None, error: str, wait: float | None
    ) -> None:
        if item.attempts >= self.settings.max_attempts:
            await self._dead(item, status, f"gave up after {item.attempts} attempts: {error}")
            return
        delay = wait if wait is not None else backoff(item.attempts, rng=self._rng)
        SYNC_METRICS.writeback(item.action, "retry")
        now = self.clock.now()
        await asyncio.to_thread(mark_retry, self.engine, item, status, error, delay, now=now)

    async def _dead(self, item: OutboxItem, status: int | None, error: str) -> None:
        _log.warning("write-back %s (%s) dead-lettered: %s", item.id, item.action, error)
        SYNC_METRICS.writeback(item.action, "dead")
        now = self.clock.now()
        await asyncio.to_thread(mark_dead, self.engine, item, status, error, now=now)


def _retry_after(value: str | None) -> float | None:
    """`Retry-After` in seconds (the HTTP-date form is not used by Zapier), bounded."""
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def writeback_enabled(settings: WritebackSettings) -> bool:
    """True when any write-back action has a URL (two-way sync is switched on)."""
    return any(target.url is not None for target in settings.actions.values())


def default_outbox(engine: sa.Engine, config: object, clock: Clock) -> OutboxSender | None:
    """The sender a worker runs: one when write-backs are configured, else None."""
    settings = getattr(config, "writeback", None)
    if not isinstance(settings, WritebackSettings) or not writeback_enabled(settings):
        return None
    return OutboxSender(engine, settings, clock=clock)
