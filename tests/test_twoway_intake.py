"""`POST /hooks/ghl` takes GHL record events for served locations: verified, committed into
the inbox as `ghl_*` work rows before the 200, deduplicated by webhookId, 429 only when the
store cannot take them (GHL retries only on 429)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx2
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ghlsync.server import create_app, serve_in_thread
from ghlsync.server._ghl_events import GHLEventIntake
from ghlsync.store import create_engine, migrate
from ghlsync.store._tables_engine import inbox, work_items
from tests._locations_kit import base_config
from tests._twoway_kit import HOOK


@pytest.fixture
def ghl_hooks(database_url: str) -> Iterator[tuple[Ed25519PrivateKey, httpx2.Client, sa.Engine]]:
    engine = create_engine(database_url)
    migrate(engine)
    key = Ed25519PrivateKey.generate()
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    config = base_config(webhook_public_key=pem.decode(), location_id="loc1", token="t")
    on = {"create_lead": config.writeback.actions["create_lead"].model_copy(update={"url": HOOK})}
    config = config.model_copy(
        update={"writeback": config.writeback.model_copy(update={"actions": on})}
    )
    app = create_app(engine=engine, config=config)
    with serve_in_thread(app) as url, httpx2.Client(base_url=url) as http:
        yield key, http, engine
    engine.dispose()


def post(key: Ed25519PrivateKey, http: httpx2.Client, **event: Any) -> httpx2.Response:
    event.setdefault("timestamp", datetime.now(UTC).isoformat())
    body = json.dumps(event).encode()
    signature = base64.b64encode(key.sign(body)).decode()
    headers = {"content-type": "application/json", "x-ghl-signature": signature}
    return http.post("/hooks/ghl", content=body, headers=headers)


def rows(engine: sa.Engine) -> list[tuple[str, str, str]]:
    with engine.connect() as conn:
        found = conn.execute(
            sa.select(work_items.c.entity_type, work_items.c.source_id, work_items.c.event)
        )
        return sorted((r[0], r[1], r[2]) for r in found)


def test_record_events_become_ghl_work_rows(ghl_hooks: Any) -> None:
    key, http, engine = ghl_hooks
    answer = post(key, http, type="ContactCreate", locationId="loc1", id="g1", webhookId="w1")
    assert answer.status_code == 200 and answer.json()["status"] == "accepted"
    appointment = {"id": "a1", "contactId": "g1", "dateUpdated": "2026-01-01T00:00:00Z"}
    post(
        key,
        http,
        type="AppointmentCreate",
        locationId="loc1",
        appointment=appointment,
        webhookId="w2",
    )
    post(key, http, type="NoteCreate", locationId="loc1", id="n1", contactId="g1", webhookId="w3")
    assert rows(engine) == [
        ("ghl_appointment", "a1", "AppointmentCreate"),
        ("ghl_contact", "g1", "ContactCreate"),
        ("ghl_note", "n1", "NoteCreate"),
    ]
    with engine.connect() as conn:
        keys = sorted(r[0] for r in conn.execute(sa.select(inbox.c.delivery_key)))
    assert keys == ["id:w1", "id:w2", "id:w3"]


def test_a_location_not_served_is_refused(ghl_hooks: Any) -> None:
    key, http, engine = ghl_hooks
    answer = post(key, http, type="ContactCreate", locationId="elsewhere", id="g1", webhookId="w1")
    assert answer.status_code == 403
    assert rows(engine) == []


def test_a_store_that_cannot_take_it_answers_429_and_the_retry_is_taken(
    ghl_hooks: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    key, http, engine = ghl_hooks
    original = GHLEventIntake._commit

    def saturated(self: GHLEventIntake, delivery: Any) -> bool:
        raise sa.exc.OperationalError("BEGIN", {}, Exception("database is locked"))

    monkeypatch.setattr(GHLEventIntake, "_commit", saturated)
    event = {"type": "ContactUpdate", "locationId": "loc1", "id": "g1", "webhookId": "w9"}
    stamp = datetime.now(UTC).isoformat()
    assert post(key, http, timestamp=stamp, **event).status_code == 429
    assert rows(engine) == []
    monkeypatch.setattr(GHLEventIntake, "_commit", original)
    retry = post(key, http, timestamp=stamp, **event)  # GHL's retry: same webhookId
    assert retry.status_code == 200 and retry.json()["status"] == "accepted"
    assert rows(engine) == [("ghl_contact", "g1", "ContactUpdate")]


def test_without_two_way_record_events_are_ignored(database_url: str) -> None:
    engine = create_engine(database_url)
    migrate(engine)
    key = Ed25519PrivateKey.generate()
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    config = base_config(webhook_public_key=pem.decode(), location_id="loc1", token="t")
    app = create_app(engine=engine, config=config)
    try:
        with serve_in_thread(app) as url, httpx2.Client(base_url=url) as http:
            answer = post(
                key, http, type="ContactCreate", locationId="loc1", id="g1", webhookId="w1"
            )
        assert answer.status_code == 200 and answer.json()["status"] == "ignored"
        assert rows(engine) == []
    finally:
        engine.dispose()
