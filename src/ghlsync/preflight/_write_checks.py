"""Checks of the write side: the GHL webhook key, the write-back URLs, and one harmless test
request per write path.

Against a ghlsync sandbox the test requests are real: a sample event per entity type runs
through the real flows (one contact, task, note, appointment, and card when a pipeline is
set), and a signed test write-back goes to each configured URL on this machine or the
sandbox's host (an emulated Catch Hook; a real Zapier URL only gets the HEAD below).
Against GHL itself nothing is written: the same samples are planned by the preview engine (a
dry run: the calls are built and their bodies checked against GHL's models), and each
write-back URL is asked a HEAD, which answers without running its Zap.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2

from ghlsync.ghl._errors import GHLError
from ghlsync.mapping import AppConfig, Mapper, MappingError
from ghlsync.preflight._model import CheckLine, Preflight, failed, passed

__all__ = ["check_webhook_key", "check_write_paths", "check_writeback_urls", "sample_events"]

_SAMPLE_ID = "ghlsync-check"
# The events a sample is taken from first (the preset's names); else a type's first upsert.
_USUAL = ("customer.created", "task.created", "note.created", "appointment.scheduled")
_NO_LOCATION = "<location id>"  # a dry run without a location, as `ghlsync preview` shows


def _sample_fields() -> dict[str, str]:
    start = (datetime.now(UTC) + timedelta(days=7)).replace(hour=15, minute=0, second=0)
    return {
        "first_name": "Preflight",
        "last_name": "Check",
        "email": "ghlsync-check@example.com",
        "task_title": "ghlsync check: test task",
        "task_due": start.isoformat(),
        "note_body": "ghlsync check: test note",
        "appointment_title": "ghlsync check: test appointment",
        "appointment_start": start.isoformat(),
        "appointment_end": (start + timedelta(hours=1)).isoformat(),
        "updated_at": datetime.now(UTC).isoformat(),
    }


def sample_events(config: AppConfig) -> dict[str, tuple[str, dict[str, str]]]:
    """Write path → (event, payload): the first upsert event of each entity type (and the
    first deal event when a deal pipeline is set), filled with harmless sample values."""
    found: dict[str, tuple[str, dict[str, str]]] = {}
    for name, rule in sorted(config.events.items(), key=lambda item: item[0] not in _USUAL):
        if rule.action != "upsert" or rule.entity in found:
            continue
        payload = {**_sample_fields(), rule.id: f"{_SAMPLE_ID}-{rule.entity}"}
        if rule.contact:
            payload[rule.contact] = f"{_SAMPLE_ID}-contact"
        found[rule.entity] = (name, payload)
    deal = _deal_sample(config)
    if deal is not None and "contact" in found:
        found["opportunity"] = deal
    return found


def _deal_sample(config: AppConfig) -> tuple[str, dict[str, str]] | None:
    settings = config.opportunities
    if not settings.deal_pipeline or "deal.stage_changed" not in config.events:
        return None
    rule = config.events["deal.stage_changed"]
    stage = next(iter(settings.deal_stages), None)
    if stage is None:
        return None  # which stage exists is GHL's to say: the pipelines line checks it
    payload = {**_sample_fields(), rule.id: f"{_SAMPLE_ID}-contact", "deal_stage": stage}
    return "deal.stage_changed", payload


async def check_webhook_key(pf: Preflight) -> list[CheckLine]:
    """GHL's webhook signing key is configured and readable (POST /hooks/ghl verifies with it)."""
    from ghlsync.ghl._webhooks import load_ed25519_public_key

    key = pf.config.ghl.webhook_public_key
    fix = (
        "paste the Ed25519 webhook public key (PEM, base64 or hex) of your GHL app as "
        "ghl.webhook_public_key; a ghlsync sandbox gives its own at GET "
        "/_sandbox/webhook-public-key"
    )
    if not key:
        if not _uses_ghl_webhooks(pf.config):
            return [passed("webhook key", "not needed: no flow takes GHL webhooks (one-way)")]
        return [failed("webhook key", "ghl.webhook_public_key is not set", fix)]
    try:
        load_ed25519_public_key(key)
    except ValueError as error:
        return [failed("webhook key", f"ghl.webhook_public_key cannot be read: {error}", fix)]
    return [passed("webhook key", "ghl.webhook_public_key is set and readable")]


def _uses_ghl_webhooks(config: AppConfig) -> bool:
    """Two-way sync, card moves and app installs all arrive as GHL webhooks."""
    writeback = any(config.writeback.url(a) for a in config.writeback.actions)
    cards = bool(config.opportunities.deal_pipeline or config.opportunities.project_pipeline)
    return writeback or cards or bool(config.ghl.app_id)


async def check_writeback_urls(pf: Preflight) -> list[CheckLine]:
    """Each configured write-back URL answers; a signing secret is set when any is."""
    found = {a: pf.config.writeback.url(a) for a in pf.config.writeback.actions}
    urls = {a: u for a, u in found.items() if u}
    if not urls:
        return [passed("write-back", "no write-back URL configured (write-backs are skipped)")]
    lines = [_secret_line(pf.config)]
    async with httpx2.AsyncClient(timeout=pf.config.writeback.timeout) as http:
        for action, url in urls.items():
            lines.append(await _one_url(http, pf, action, url))
    return lines


def _secret_line(config: AppConfig) -> CheckLine:
    if config.writeback.secret is not None:
        return passed("write-back", "writeback.secret is set: every write-back is signed")
    return failed(
        "write-back",
        "writeback.secret is not set: write-backs go unsigned",
        "set writeback.secret (or GHLSYNC_WRITEBACK_SECRET) to a whsec_... secret, and check "
        "the signature in each Zap (docs/two-way.md)",
    )


async def _one_url(http: httpx2.AsyncClient, pf: Preflight, action: str, url: str) -> CheckLine:
    fix = f"check writeback.actions.{action}.url: it is the Catch Hook URL of the Zap"
    if pf.sandbox and _local(url, pf.config.ghl.base_url):
        return await _send_test(http, pf.config, action, url, fix)
    try:
        answer = await http.head(url)
    except httpx2.HTTPError as error:
        return failed(
            "write-back", f"{action}: {url} does not answer ({type(error).__name__})", fix
        )
    if answer.status_code >= 500 or answer.status_code == 404:
        return failed("write-back", f"{action}: {url} answers {answer.status_code}", fix)
    return passed("write-back", f"{action}: {url} answers (HEAD {answer.status_code}; no Zap run)")


def _local(url: str, sandbox_url: str) -> bool:
    """A URL on this machine or on the sandbox's host: a test write-back there runs no real
    Zap (a sandbox environment that kept production's Zapier URLs only gets a HEAD)."""
    from urllib.parse import urlsplit

    host = urlsplit(url).hostname or ""
    return host in ("127.0.0.1", "::1", "localhost") or host == urlsplit(sandbox_url).hostname


async def _send_test(
    http: httpx2.AsyncClient, config: AppConfig, action: str, url: str, fix: str
) -> CheckLine:
    from ghlsync.dripjobs._writeback import new_writeback_id, writeback_body, writeback_headers

    writeback_id, now = new_writeback_id(), time.time()
    body = writeback_body(action, writeback_id, now, {"test": "true", "sent_by": "ghlsync check"})
    secret = config.writeback.secret.reveal() if config.writeback.secret is not None else None
    try:
        answer = await http.post(
            url, content=body, headers=writeback_headers(secret, writeback_id, int(now), body)
        )
    except httpx2.HTTPError as error:
        return failed(
            "write-back", f"{action}: {url} does not answer ({type(error).__name__})", fix
        )
    if not answer.is_success:
        return failed(
            "write-back", f"{action}: the test write-back was refused ({answer.status_code})", fix
        )
    return passed("write-back", f"{action}: test write-back accepted ({answer.status_code})")


async def check_write_paths(pf: Preflight) -> list[CheckLine]:
    """One test request per GHL write path: real against a sandbox, a dry run against GHL."""
    if pf.engine is None:
        return []
    mapper = Mapper(pf.config)
    lines = []
    for path, (event, payload) in sample_events(pf.config).items():
        lines.append(await _one_path(pf, mapper, path, event, payload))
    return lines


async def _one_path(
    pf: Preflight, mapper: Mapper, path: str, event: str, payload: Mapping[str, Any]
) -> CheckLine:
    from ghlsync.engine.flows.to_ghl._dispatch import plan, sync_event

    check = f"write {path}"
    try:
        mapped = mapper.map(event, dict(payload))
    except MappingError as error:
        return failed(
            check,
            f"a sample {event} does not map: {error}",
            f"check the {event} rule; `ghlsync preview` shows what a real payload maps to",
        )
    context = _context(pf)
    try:
        if pf.sandbox and pf.client is not None:
            outcomes = await sync_event(context, mapped)
            done = ", ".join(f"{o.entity_type} {o.action}" for o in outcomes)
            return passed(check, f"test {event} written to the sandbox ({done})")
        calls = await plan(context, mapped)
        _check_bodies(calls)
    except (GHLError, MappingError) as error:
        return failed(check, f"{event}: {error}", _write_fix(path))
    shown = ", ".join(f"{c.method} {c.path}" for c in calls if c.purpose != "lookup")
    return passed(check, f"dry run of {event}: {shown or 'no call'} (nothing sent)")


def _check_bodies(calls: list[Any]) -> None:
    """Each planned body as GHL's model takes it (raises the client's `ValidationError`)."""
    from ghlsync.ghl._operations import find_operation

    for call in calls:
        operation = find_operation(call.method, call.path)
        if operation is not None and operation.body is not None and call.body is not None:
            operation.dump_body(call.body)


def _context(pf: Preflight) -> Any:
    from ghlsync._clock import SYSTEM_CLOCK
    from ghlsync.engine.flows.to_ghl._model import FlowContext

    assert pf.engine is not None
    calendar = pf.config.ghl.calendar_id or "<calendar id>"
    location = pf.location_id or _NO_LOCATION
    return FlowContext(pf.engine, pf.client, location, calendar, pf.config, SYSTEM_CLOCK)


def _write_fix(path: str) -> str:
    return (
        f"the {path} write path fails: read GHL's answer above; a 403 is a missing write "
        "scope, a 422 a field GHL does not take (`ghlsync preview` shows the body)"
    )
