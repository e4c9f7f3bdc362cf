"""Firing DripJobs' Zapier triggers at ghlsync's receiver, in the background.

DripJobs answers the Zap's action first and the trigger's Zap runs shortly after, so firing
never blocks the answer: events go to a queue that one task drains in order. A 429 (honouring
`Retry-After`), a 5xx or a transport error is retried with the same `delivery_id`, as Zapier
replays a failed step; another 4xx is recorded as failed and dropped.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx2

from ghlsync.sandbox.dripjobs._state import DripJobsState

MAX_BACKOFF_SECONDS = 5.0
MAX_RETRY_AFTER_SECONDS = 30.0


class TriggerFirer:
    """Queues fired events and POSTs them to ghlsync one by one."""

    def __init__(
        self, state: DripJobsState, transport: httpx2.AsyncBaseTransport | None = None
    ) -> None:
        self.state = state
        self._transport = transport
        self._queue: asyncio.Queue[dict[str, Any]] | None = None
        self._worker: asyncio.Task[None] | None = None

    def fire(self, event: str, fields: dict[str, str]) -> dict[str, Any]:
        """Record the event and queue its delivery; returns the log entry."""
        with self.state.lock:
            number = len(self.state.fired) + 1
            payload = {**fields, "delivery_id": f"dj_evt_{number}"}
            entry: dict[str, Any] = {
                "event": event,
                "delivery_id": payload["delivery_id"],
                "fields": payload,
                "status": "pending",
                "attempts": 0,
                "http_status": None,
                "error": None,
            }
            self.state.fired.append(entry)
        self._queue_for_loop().put_nowait(entry)
        return entry

    def _queue_for_loop(self) -> asyncio.Queue[dict[str, Any]]:
        loop = asyncio.get_running_loop()
        if self._queue is None or self._worker is None or self._worker.get_loop() is not loop:
            self._queue = asyncio.Queue()
            self._worker = loop.create_task(self._drain(self._queue))
        return self._queue

    async def _drain(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        async with httpx2.AsyncClient(transport=self._transport, timeout=10.0) as client:
            while True:
                entry = await queue.get()
                try:
                    await self._deliver(client, entry)
                finally:
                    queue.task_done()

    async def _deliver(self, client: httpx2.AsyncClient, entry: dict[str, Any]) -> None:
        settings = self.state.settings
        await self.state.clock.sleep(settings.fire_delay_seconds)
        url = settings.hook_url(entry["event"])
        if url is None:
            self._settle(entry, "not_configured", error="no ghlsync_url configured")
            return
        body = json.dumps(entry["fields"]).encode()
        headers = {"content-type": "application/json"}
        if settings.secret:
            headers["authorization"] = f"Bearer {settings.secret}"
        for attempt in range(1, settings.fire_max_attempts + 1):
            wait = await self._attempt(client, entry, url, body, headers, attempt)
            if wait is None:
                return
            await self.state.clock.sleep(wait)
        self._settle(entry, "failed", error=entry["error"] or "gave up")

    async def _attempt(
        self,
        client: httpx2.AsyncClient,
        entry: dict[str, Any],
        url: str,
        body: bytes,
        headers: dict[str, str],
        attempt: int,
    ) -> float | None:
        """POST once; None when settled, else the seconds to wait before the next try."""
        with self.state.lock:
            entry["attempts"] = attempt
        try:
            response = await client.post(url, content=body, headers=headers)
        except httpx2.HTTPError as exc:
            entry["error"] = f"{type(exc).__name__}: {exc}"
            return self._backoff(attempt)
        entry["http_status"] = response.status_code
        if response.is_success:
            self._settle(entry, "delivered")
            return None
        entry["error"] = f"HTTP {response.status_code}"
        if response.status_code == 429:
            return _retry_after(response) or self._backoff(attempt)
        if response.status_code >= 500:
            return self._backoff(attempt)
        self._settle(entry, "failed", error=f"HTTP {response.status_code}: {response.text[:200]}")
        return None

    def _backoff(self, attempt: int) -> float:
        base = self.state.settings.fire_retry_seconds
        return float(min(MAX_BACKOFF_SECONDS, base * 2 ** (attempt - 1)))

    def _settle(self, entry: dict[str, Any], status: str, *, error: str | None = None) -> None:
        with self.state.lock:
            entry["status"] = status
            entry["error"] = error

    async def drain(self) -> None:
        """Wait until every queued event was settled (for in-process tests)."""
        if self._queue is not None:
            await self._queue.join()


def _retry_after(response: httpx2.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    try:
        seconds = float(value)
    except ValueError:
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)
