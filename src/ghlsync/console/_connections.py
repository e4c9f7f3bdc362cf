"""The Connections page: GHL token status, DripJobs webhook URLs (and secret rotation), and the
write-back URLs of two-way sync (and a signed test POST to one).

Secrets are never shown, except a rotated one, once, on the page that rotated it.
"""

from __future__ import annotations

import time
from typing import Any

import httpx2
import sqlalchemy as sa

from ghlsync._secret import Secret
from ghlsync.dripjobs._writeback import new_writeback_id, writeback_body, writeback_headers
from ghlsync.engine.locations._directory import LocationDirectory
from ghlsync.engine.locations._install import webhook_path
from ghlsync.engine.locations._rows import list_connections, rotate_secret
from ghlsync.ghl._vault import stored_status
from ghlsync.mapping import AppConfig

__all__ = ["connections_view", "rotate", "send_test"]


def connections_view(
    engine: sa.Engine, config: AppConfig, public_url: str, locations: dict[str, str | None]
) -> dict[str, Any]:
    """What the page lists: one entry per location, and the write-back targets."""
    events = sorted(config.events)
    entries = [
        _location(engine, config, public_url, location, name, events)
        for location, name in locations.items()
    ]
    writebacks = [
        {"action": action, "url": config.writeback.url(action)}
        for action in sorted(config.writeback.actions)
    ]
    return {
        "locations": entries,
        "writebacks": writebacks,
        "writeback_signed": config.writeback.secret is not None,
    }


def _location(
    engine: sa.Engine,
    config: AppConfig,
    public_url: str,
    location: str,
    name: str | None,
    events: list[str],
) -> dict[str, Any]:
    base = public_url.rstrip("/")
    hooks = []
    if location == config.ghl.location_id and config.dripjobs.secret is not None:
        hooks.append(
            {
                "connection_id": "default",
                "urls": [(e, f"{base}/hooks/dripjobs/{e}") for e in events],
                "rotatable": False,  # its secret is ghlsync.yaml's dripjobs.secret
                "revoked": False,
                "created_at": None,
            }
        )
    for conn in list_connections(engine, None, location):
        hooks.append(
            {
                "connection_id": conn.connection_id,
                "urls": [(e, base + webhook_path(conn.connection_id, e)) for e in events],
                "rotatable": not conn.revoked,
                "revoked": conn.revoked,
                "created_at": conn.created_at,
            }
        )
    return {
        "location_id": location,
        "name": name,
        "token": _token(engine, config, location),
        "hooks": hooks,
    }


def _token(engine: sa.Engine, config: AppConfig, location: str) -> dict[str, str]:
    """The GHL credential in words, a tone for its badge, and the OAuth button it offers
    (`Connect`, `Reconnect`, or none for a token set in ghlsync.yaml)."""
    if location == config.ghl.location_id and config.ghl.token is not None:
        return {"word": "Private Integration token (in ghlsync.yaml)", "tone": "ok", "oauth": ""}
    status = stored_status(engine, location)
    if status is None:
        return {"word": "Not connected: no GHL token stored", "tone": "bad", "oauth": "Connect"}
    return {**_stored_token(status), "oauth": "Reconnect"}


def _stored_token(status: Any) -> dict[str, str]:
    kind = "OAuth (Marketplace app)" if status.kind == "oauth" else "Private Integration token"
    expires = status.expires_in(time.time())
    if status.status != "active":
        message = status.status_message or status.status
        return {"word": f"{kind}: {message}; reconnect GHL", "tone": "bad"}
    if expires is not None and expires < 0:
        return {
            "word": f"{kind}: access token expired; it is refreshed on the next call",
            "tone": "warn",
        }
    return {"word": f"{kind}: connected", "tone": "ok"}


def rotate(locations: LocationDirectory, connection_id: str) -> tuple[str, Secret] | None:
    """A new secret for one live connection: `(location, secret)`, or None if not live."""
    from ghlsync.engine.locations._rows import get_connection

    found = get_connection(locations.engine, locations.cipher, connection_id)
    if found is None or found.revoked:
        return None
    secret = rotate_secret(locations.engine, locations.cipher, connection_id)
    if secret is None:
        return None
    locations.invalidate(found.location_id)  # this server refuses the old secret at once
    return found.location_id, secret


async def send_test(config: AppConfig, action: str) -> str:
    """POST a signed test write-back to `action`'s URL; the answer in words."""
    url = config.writeback.url(action)
    if url is None:
        return f"No URL is configured for {action}."
    writeback_id = new_writeback_id()
    now = time.time()
    body = writeback_body(action, writeback_id, now, {"test": "true", "sent_by": "ghlsync console"})
    secret = config.writeback.secret.reveal() if config.writeback.secret is not None else None
    headers = writeback_headers(secret, writeback_id, int(now), body)
    try:
        async with httpx2.AsyncClient(timeout=config.writeback.timeout) as client:
            response = await client.post(url, content=body, headers=headers)
    except httpx2.HTTPError as exc:
        return f"{action}: no answer from {url} ({type(exc).__name__})."
    verdict = "accepted" if 200 <= response.status_code < 300 else "refused"
    return f"{action}: the URL {verdict} the test ({response.status_code})."
