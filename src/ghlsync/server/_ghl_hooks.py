"""`POST /hooks/ghl`: GHL's own webhooks. Today: INSTALL and UNINSTALL of the app.

Order: size limit → signature on the raw bytes, timestamp and replay (`WebhookVerifier`, replay
guard on `ghl_webhooks_seen`) → is it ours (`EventScope`: our app's id, a location we serve;
else 403) → act → answer. INSTALL adds the location (or, for an agency install, every location
GHL lists for the app) with a fresh DripJobs connection; UNINSTALL stops syncing it. Other
record events (ContactCreate, TaskComplete, AppointmentUpdate, ...)
are committed to the inbox when two-way sync is on (`_ghl_events`, a write-back URL is
configured), and so is every event type an enabled recipe names (`ghl.<type>` triggers),
answered 200 after the commit; the rest are answered 200 and ignored.

GHL retries a delivery only when answered 429, so a failure to act (GHL or the store
unreachable) forgets the webhook id and answers 429: the retry is then not a replay.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

import sqlalchemy as sa
from starlette.requests import Request
from starlette.responses import Response

from ghlsync.engine.locations._install import Installed, Installer, webhook_path
from ghlsync.ghl._webhooks import (
    MalformedWebhook,
    ReplayedWebhook,
    StaleTimestamp,
    WebhookVerificationError,
    WebhookVerifier,
    seen_key,
)
from ghlsync.server._ghl_events import GHLEventIntake
from ghlsync.server._ghl_scope import EventScope
from ghlsync.server._limits import DEFAULT_BODY_TIMEOUT, read_body
from ghlsync.server._metrics import ReceiverMetrics
from ghlsync.server._responses import Rejection, json_response
from ghlsync.store._tables import ghl_webhooks_seen

__all__ = ["GHLWebhookReceiver"]

_log = logging.getLogger("ghlsync.server")
MAX_BODY_BYTES = 256 * 1024


class GHLWebhookReceiver:
    """Verifies GHL webhooks and hands INSTALL/UNINSTALL to the `Installer`."""

    def __init__(
        self,
        *,
        engine: sa.Engine,
        verifier: WebhookVerifier,
        installer: Installer,
        scope: EventScope,
        metrics: ReceiverMetrics,
        max_body_bytes: int = MAX_BODY_BYTES,
        body_timeout: float = DEFAULT_BODY_TIMEOUT,
        events: GHLEventIntake | None = None,
    ) -> None:
        self._engine = engine
        self._events = events  # two-way sync on: record events → inbox; None: ignored
        self._verifier = verifier
        self._installer = installer
        self._scope = scope
        self._metrics = metrics
        self._max_body_bytes = max_body_bytes
        self._body_timeout = body_timeout

    async def handle(self, request: Request) -> Response:
        """The whole answer to one GHL webhook; every refusal is a JSON error."""
        try:
            event = await self._verified(request)
            await self._in_scope(event)
        except Rejection as rejection:
            self._metrics.ghl_webhook("rejected", rejection.code)
            return rejection.response()
        self._metrics.ghl_webhook("accepted", "")
        try:
            # The URL a Zap must post to: the public one when known (behind a proxy the
            # request's own base URL is the internal address).
            public = os.environ.get("GHLSYNC_PUBLIC_URL") or str(request.base_url)
            return await self._act(event, public.rstrip("/"))
        except Exception:
            _log.exception("acting on GHL %s webhook failed; asking GHL to retry", event["type"])
            await asyncio.to_thread(self._forget, str(event["webhookId"]))
            message = "could not act on the webhook now; retry"
            return json_response(429, {"error": "retry_later", "message": message})

    async def _verified(self, request: Request) -> dict[str, Any]:
        body = await read_body(request, self._max_body_bytes, max_seconds=self._body_timeout)
        try:
            event = await self._verifier.averify(body, request.headers)
        except WebhookVerificationError as exc:
            raise _rejection(exc) from None
        event["type"] = str(event.get("type") or "")
        return event

    async def _in_scope(self, event: dict[str, Any]) -> None:
        refusal = await asyncio.to_thread(self._scope.refusal, event)
        if refusal is not None:
            _log.warning("refused a signed GHL %s webhook: %s", event["type"], refusal.code)
            raise refusal

    async def _act(self, event: dict[str, Any], base_url: str) -> Response:
        kind = event["type"]
        location, company = _text(event.get("locationId")), _text(event.get("companyId"))
        if kind == "INSTALL":
            app_id = _text(event.get("appId"))
            done = await self._installer.install(
                location_id=location, company_id=company, app_id=app_id
            )
            return json_response(200, {"status": "installed", "locations": _shown(done, base_url)})
        if kind == "UNINSTALL":
            removed = await self._installer.uninstall(location_id=location, company_id=company)
            return json_response(200, {"status": "uninstalled", "locations": removed})
        if self._events is not None and self._events.takes(kind):
            return await self._events.take(event)
        return json_response(200, {"status": "ignored", "type": kind})

    def _forget(self, webhook_id: str) -> None:
        with self._engine.begin() as conn:
            conn.execute(
                ghl_webhooks_seen.delete().where(
                    ghl_webhooks_seen.c.webhook_id == seen_key(webhook_id)
                )
            )


def _shown(done: list[Installed], base_url: str) -> list[dict[str, str]]:
    """What GHL gets back (never a secret), and the log line that gives the user the URL."""
    shown = []
    for item in done:
        url = base_url + webhook_path(item.connection_id)
        _log.info("GHL installed location %s: DripJobs webhook URL %s", item.location_id, url)
        shown.append({"locationId": item.location_id, "webhookUrl": url, "token": item.token})
    return shown


def _rejection(exc: WebhookVerificationError) -> Rejection:
    message = str(exc)
    if isinstance(exc, MalformedWebhook):
        return Rejection(400, "malformed_body", message)
    if isinstance(exc, ReplayedWebhook):
        return Rejection(409, "replayed_webhook", message)
    if isinstance(exc, StaleTimestamp):
        return Rejection(401, "stale_timestamp", message)
    return Rejection(401, "bad_signature", message)


def _text(value: object) -> str | None:
    return str(value) if isinstance(value, str) and value else None
