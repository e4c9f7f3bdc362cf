"""GHL-style webhook delivery: events POSTed in the background, signed with Ed25519.

The signature is `x-ghl-signature: base64(Ed25519(raw body))`, verifiable with the PEM key at
`GET /_sandbox/webhook-public-key`. Like GHL, a delivery is retried only when the receiver
answers 429; any other failure is recorded and dropped.
"""

from __future__ import annotations

import asyncio
import base64
import json

import httpx2
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ghlsync.sandbox._state import Record, SandboxState

RETRIES_ON_429 = 3


class WebhookDispatcher:
    """Queues events from the API routes and delivers them one by one, in order."""

    def __init__(
        self, state: SandboxState, transport: httpx2.AsyncBaseTransport | None = None
    ) -> None:
        self.state = state
        self.key = Ed25519PrivateKey.generate()
        self._transport = transport
        self._queue: asyncio.Queue[tuple[str, Record]] | None = None
        self._worker: asyncio.Task[None] | None = None
        state.event_hook = self.publish

    def public_key_pem(self) -> str:
        """The verification key as SPKI PEM."""
        raw = self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return raw.decode()

    def sign(self, body: bytes) -> str:
        """The `x-ghl-signature` value for a raw body."""
        return base64.b64encode(self.key.sign(body)).decode()

    def publish(self, event: Record) -> None:
        """Queue an event for delivery (no-op without a URL); never blocks the caller."""
        url = self.state.webhook_url
        if not url:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._note(event, url, error="no running event loop")
            return
        if self._queue is None or self._worker is None or self._worker.get_loop() is not loop:
            self._queue = asyncio.Queue()
            self._worker = loop.create_task(self._drain(self._queue))
        self._queue.put_nowait((url, event))

    async def _drain(self, queue: asyncio.Queue[tuple[str, Record]]) -> None:
        async with httpx2.AsyncClient(transport=self._transport, timeout=10.0) as client:
            while True:
                url, event = await queue.get()
                await self._deliver(client, url, event)
                queue.task_done()

    async def _deliver(self, client: httpx2.AsyncClient, url: str, event: Record) -> None:
        body = json.dumps(event, separators=(",", ":")).encode()
        headers = {"content-type": "application/json", "x-ghl-signature": self.sign(body)}
        for attempt in range(RETRIES_ON_429 + 1):
            try:
                response = await client.post(url, content=body, headers=headers)
            except httpx2.HTTPError as exc:
                self._note(event, url, error=f"{type(exc).__name__}: {exc}")
                return
            if response.status_code != 429 or attempt == RETRIES_ON_429:
                self._note(event, url, status=response.status_code)
                return
            await asyncio.sleep(0.05 * 2**attempt)

    async def drain(self) -> None:
        """Wait until every queued event was attempted (for tests)."""
        if self._queue is not None:
            await self._queue.join()

    def _note(
        self, event: Record, url: str, *, status: int | None = None, error: str | None = None
    ) -> None:
        entry = {
            "type": event.get("type"),
            "webhookId": event.get("webhookId"),
            "url": url,
            "status": status,
            "error": error,
        }
        with self.state.lock:
            self.state.webhook_deliveries.append(entry)
