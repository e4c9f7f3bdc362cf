"""`POST /hooks/ghl` acts only on our app's events and on locations this server serves.

GHL signs every marketplace app's webhooks with one shared key, so these tests sign with the
test's own key exactly as GHL would, and check what a validly signed event for *another* app
(or another location) may do: nothing.
"""

from __future__ import annotations

import base64
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx2
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ghlsync.engine.locations._rows import get_location, register_location
from ghlsync.ghl._crypto import TokenCipher
from ghlsync.mapping import AppConfig
from ghlsync.server import create_app, serve_in_thread
from ghlsync.server._ghl_scope import app_id_from_client_id, configured_app_id
from ghlsync.store import create_engine, migrate
from tests._locations_kit import base_config

OUR_APP = "ourApp0123456789"
_ids = itertools.count()


@dataclass
class Signed:
    """A receiver and a key GHL would sign with."""

    http: httpx2.Client
    key: Ed25519PrivateKey
    engine: sa.Engine

    def send(self, kind: str, **fields: Any) -> httpx2.Response:
        event = {"type": kind, **fields, "webhookId": f"wh-{next(_ids)}"}
        event["timestamp"] = datetime.now(UTC).isoformat()
        body = json.dumps(event).encode()
        signature = base64.b64encode(self.key.sign(body)).decode()
        headers = {"content-type": "application/json", "x-ghl-signature": signature}
        return self.http.post("/hooks/ghl", content=body, headers=headers)

    def metric(self, outcome: str, reason: str) -> float:
        text = self.http.get("/metrics").text
        line = f'ghlsync_ghl_webhooks_total{{outcome="{outcome}",reason="{reason}"}} '
        found = [row for row in text.splitlines() if row.startswith(line)]
        return float(found[0].split()[-1]) if found else 0.0


@pytest.fixture
def store(sqlite_url: str) -> Iterator[sa.Engine]:
    engine = create_engine(sqlite_url)
    migrate(engine)
    yield engine
    engine.dispose()


def _serve(store: sa.Engine, **ghl: Any) -> Iterator[Signed]:
    key = Ed25519PrivateKey.generate()
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    config = base_config(webhook_public_key=pem.decode(), **ghl)
    app = create_app(engine=store, config=config)
    with serve_in_thread(app) as url, httpx2.Client(base_url=url) as http:
        yield Signed(http, key, store)


@pytest.fixture
def ours(store: sa.Engine) -> Iterator[Signed]:
    """Our app is OUR_APP; the configured location is loc_home."""
    yield from _serve(store, app_id=OUR_APP, location_id="loc_home")


@pytest.fixture
def no_app(store: sa.Engine) -> Iterator[Signed]:
    """No app configured at all."""
    yield from _serve(store, app_id=None)


def test_an_install_for_another_app_creates_nothing(ours: Signed) -> None:
    answer = ours.send("INSTALL", appId="someoneElse", locationId="loc_z")

    assert (answer.status_code, answer.json()["error"]) == (403, "foreign_app")
    assert get_location(ours.engine, "loc_z") is None
    assert ours.metric("rejected", "foreign_app") == 1


def test_an_uninstall_for_another_app_leaves_the_location_running(ours: Signed) -> None:
    assert ours.send("INSTALL", appId=OUR_APP, locationId="loc_z").status_code == 200

    answer = ours.send("UNINSTALL", appId="someoneElse", locationId="loc_z")
    missing = ours.send("UNINSTALL", locationId="loc_z")  # no appId at all

    assert (answer.status_code, answer.json()["error"]) == (403, "foreign_app")
    assert (missing.status_code, missing.json()["error"]) == (403, "foreign_app")
    row = get_location(ours.engine, "loc_z")
    assert row is not None and row.active


def test_our_apps_install_and_uninstall_are_acted_on(ours: Signed) -> None:
    installed = ours.send("INSTALL", appId=OUR_APP, locationId="loc_z")
    removed = ours.send("UNINSTALL", appId=OUR_APP, locationId="loc_z")

    assert installed.json()["status"] == "installed"
    assert removed.json()["status"] == "uninstalled"
    assert ours.metric("accepted", "") == 2


def test_a_plan_change_for_another_app_is_refused(ours: Signed) -> None:
    answer = ours.send("PLAN_CHANGE", appId="someoneElse", locationId="loc_home")
    assert (answer.status_code, answer.json()["error"]) == (403, "foreign_app")
    assert ours.send("PLAN_CHANGE", appId=OUR_APP, locationId="loc_home").status_code == 200


@pytest.mark.parametrize("kind", ["INSTALL", "UNINSTALL", "PLAN_CHANGE"])
def test_without_a_configured_app_every_app_event_is_refused(no_app: Signed, kind: str) -> None:
    answer = no_app.send(kind, appId="anyApp", locationId="loc_z")

    assert (answer.status_code, answer.json()["error"]) == (403, "app_not_configured")
    assert "ghl.app_id" in answer.json()["message"]
    assert get_location(no_app.engine, "loc_z") is None


def test_events_without_app_id_are_taken_only_for_served_locations(ours: Signed) -> None:
    ours.send("INSTALL", appId=OUR_APP, locationId="loc_installed")
    ours.send("INSTALL", appId=OUR_APP, locationId="loc_gone")
    ours.send("UNINSTALL", appId=OUR_APP, locationId="loc_gone")

    answers = {
        loc: ours.send("ContactCreate", locationId=loc, id="c1").status_code
        for loc in ("loc_home", "loc_installed", "loc_gone", "loc_stranger")
    }
    untargeted = ours.send("ContactCreate", id="c1")

    assert answers == {"loc_home": 200, "loc_installed": 200, "loc_gone": 403, "loc_stranger": 403}
    assert (untargeted.status_code, untargeted.json()["error"]) == (403, "location_not_served")


def test_a_location_registered_while_serving_is_served(
    ours: Signed, loc_cipher: TokenCipher
) -> None:
    before = ours.send("ContactCreate", locationId="loc_new", id="c1")
    register_location(ours.engine, loc_cipher, "loc_new", now=0.0)
    after = ours.send("ContactCreate", locationId="loc_new", id="c2")

    assert (before.status_code, after.status_code) == (403, 200)


@pytest.mark.parametrize(
    ("client_id", "app_id"),
    [("64f1a2b3c4d5e6f7a8b9c0d1-lmno1234", "64f1a2b3c4d5e6f7a8b9c0d1"), ("app", "app"), ("", None)],
)
def test_the_app_id_is_derived_from_the_oauth_client_id(client_id: str, app_id: str | None) -> None:
    assert app_id_from_client_id(client_id) == app_id
    config = AppConfig.default()
    assert configured_app_id(config, {"GHLSYNC_GHL_CLIENT_ID": client_id}) == app_id


def test_an_explicit_app_id_wins_over_the_client_id() -> None:
    raw = AppConfig.default().model_dump(mode="python", by_alias=True)
    raw["ghl"] = {"app_id": "explicitApp"}
    config = AppConfig.model_validate(raw)
    assert configured_app_id(config, {"GHLSYNC_GHL_CLIENT_ID": "other-x"}) == "explicitApp"
