"""`POST /hooks/ghl`: INSTALL/UNINSTALL signed by the sandbox, verified, acted on."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx2
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ghlsync._secret import Secret
from ghlsync.engine.locations._directory import LocationDirectory
from ghlsync.engine.locations._install import Installer
from ghlsync.engine.locations._rows import get_location, list_connections
from ghlsync.ghl._crypto import TokenCipher
from ghlsync.ghl._oauth import OAuthApp, TokenSet
from ghlsync.ghl._vault import TokenVault
from ghlsync.sandbox import SandboxServer
from ghlsync.server import create_app, serve_in_thread
from ghlsync.store import create_engine, migrate
from tests._locations_kit import base_config, connect_agency, sandbox_oauth


@dataclass
class Hooked:
    """A receiver whose `/hooks/ghl` the sandbox delivers to, with a vault over the sandbox."""

    admin: httpx2.Client
    http: httpx2.Client
    vault: TokenVault
    engine: sa.Engine
    cipher: TokenCipher

    def sandbox(self, path: str, **body: str) -> dict[str, Any]:
        answer = self.admin.post(path, json=body)
        assert answer.status_code == 200, answer.text
        found: dict[str, Any] = answer.json()
        return found


@pytest.fixture
def hooked(
    locations_store: sa.Engine, loc_cipher: TokenCipher, sandbox: SandboxServer
) -> Iterator[Hooked]:
    admin = httpx2.Client(base_url=sandbox.url)
    public_key = admin.get("/_sandbox/webhook-public-key").text
    config = base_config(webhook_public_key=public_key)
    oauth = sandbox_oauth(sandbox)
    vault = TokenVault(locations_store, loc_cipher, oauth)
    directory = LocationDirectory(locations_store, config, loc_cipher)
    installer = Installer(locations_store, directory, vault, oauth)
    app = create_app(
        engine=locations_store, config=config, locations=directory, installer=installer
    )
    try:
        with serve_in_thread(app) as url, httpx2.Client(base_url=url) as http:
            admin.put("/_sandbox/webhooks", json={"url": f"{url}/hooks/ghl"})
            yield Hooked(admin, http, vault, locations_store, loc_cipher)
    finally:
        admin.close()


async def test_install_mints_the_token_and_creates_a_connection(
    hooked: Hooked, sandbox: SandboxServer
) -> None:
    company = await connect_agency(sandbox, hooked.vault)

    sent = hooked.sandbox("/_sandbox/install", locationId="loc_b", companyId=company)

    assert sent["delivery"]["status"] == 200
    row = get_location(hooked.engine, "loc_b")
    assert row is not None and (row.status, row.company_id) == ("active", company)
    [connection] = list_connections(hooked.engine, hooked.cipher, "loc_b")
    assert not connection.revoked
    stored = hooked.vault.status("loc_b")
    assert stored is not None and stored.company_id == company
    # The minted token works against the sandbox for that location.
    token = await hooked.vault.token("loc_b")
    answer = hooked.admin.get(
        "/locations/loc_b",
        headers={"Authorization": f"Bearer {token.reveal()}", "Version": "2021-07-28"},
    )
    assert answer.status_code == 200


async def test_an_install_without_company_uses_the_only_agency_stored(
    hooked: Hooked, sandbox: SandboxServer
) -> None:
    # GHL may leave companyId out ("future locations" installs): the one agency is used.
    company = await connect_agency(sandbox, hooked.vault)
    directory = LocationDirectory(hooked.engine, base_config(), hooked.cipher)
    installer = Installer(hooked.engine, directory, hooked.vault, sandbox_oauth(sandbox))

    [done] = await installer.install(location_id="loc_sandbox", company_id=None)

    assert done.token == "minted"
    row = get_location(hooked.engine, "loc_sandbox")
    assert row is not None and row.company_id == company


async def test_agency_install_installs_every_location_of_the_company(
    hooked: Hooked, sandbox: SandboxServer
) -> None:
    company = await connect_agency(sandbox, hooked.vault)
    hooked.admin.post("/_sandbox/locations", json={"id": "loc_c"})

    sent = hooked.sandbox("/_sandbox/install", companyId=company)

    assert "locationId" not in sent["event"]
    assert sent["delivery"]["status"] == 200
    for location in ("loc_sandbox", "loc_c"):
        row = get_location(hooked.engine, location)
        assert row is not None and row.active
        assert hooked.vault.status(location) is not None


async def test_uninstall_stops_the_location_and_revokes_its_connection(
    hooked: Hooked, sandbox: SandboxServer
) -> None:
    await connect_agency(sandbox, hooked.vault)
    hooked.sandbox("/_sandbox/install", locationId="loc_b")
    assert hooked.vault.status("loc_b") is not None
    sent = hooked.sandbox("/_sandbox/uninstall", locationId="loc_b")

    assert sent["delivery"]["status"] == 200
    assert hooked.vault.status("loc_b") is None  # GHL revoked it; it is not kept
    row = get_location(hooked.engine, "loc_b")
    assert row is not None and row.status == "uninstalled"
    assert [c.revoked for c in list_connections(hooked.engine, hooked.cipher, "loc_b")] == [True]


def test_agency_uninstall_stops_every_location_of_the_company(hooked: Hooked) -> None:
    hooked.sandbox("/_sandbox/install", locationId="loc_b", companyId="comp_x")
    hooked.sandbox("/_sandbox/install", locationId="loc_c", companyId="comp_x")
    hooked.sandbox("/_sandbox/install", locationId="loc_d", companyId="comp_y")

    sent = hooked.sandbox("/_sandbox/uninstall", companyId="comp_x")

    assert "locationId" not in sent["event"]
    statuses = {}
    for location in ("loc_b", "loc_c", "loc_d"):
        row = get_location(hooked.engine, location)
        assert row is not None
        statuses[location] = row.status
    assert statuses == {"loc_b": "uninstalled", "loc_c": "uninstalled", "loc_d": "active"}


def test_other_event_types_of_a_location_not_served_are_refused(hooked: Hooked) -> None:
    hooked.admin.put("/_sandbox/webhooks", json={"url": str(hooked.http.base_url) + "/hooks/ghl"})
    token = {"Authorization": "Bearer sandbox-token", "Version": "2021-07-28"}
    made = hooked.admin.post(
        "/contacts/", json={"locationId": "loc_sandbox", "firstName": "Ann"}, headers=token
    )
    assert made.status_code in (200, 201)
    for _ in range(200):
        deliveries = hooked.admin.get("/_sandbox/webhooks/deliveries").json()
        if deliveries:
            break
        time.sleep(0.01)
    # No appId on ContactCreate: acted on only for a served location (tests/test_hardening_*).
    assert [(d["type"], d["status"]) for d in deliveries] == [("ContactCreate", 403)]
    assert get_location(hooked.engine, "loc_sandbox") is None


# -- verification, with a key of the test's own ------------------------------------------


@pytest.fixture
def sqlite_store(sqlite_url: str) -> Iterator[sa.Engine]:
    """Checks that do not depend on the database run on SQLite only."""
    engine = create_engine(sqlite_url)
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def signer(sqlite_store: sa.Engine) -> Iterator[tuple[Ed25519PrivateKey, httpx2.Client]]:
    key = Ed25519PrivateKey.generate()
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    config = base_config(webhook_public_key=pem.decode())
    app = create_app(engine=sqlite_store, config=config)
    with serve_in_thread(app) as url, httpx2.Client(base_url=url) as http:
        yield key, http


def _install_body(webhook_id: str, stamp: datetime | None = None) -> bytes:
    when = (stamp or datetime.now(UTC)).isoformat()
    event = {"type": "INSTALL", "appId": "sandbox", "locationId": "loc_z"}
    event |= {"webhookId": webhook_id, "timestamp": when}
    return json.dumps(event).encode()


def _post(http: httpx2.Client, body: bytes, signature: str | None) -> httpx2.Response:
    headers = {"content-type": "application/json"}
    if signature is not None:
        headers["x-ghl-signature"] = signature
    return http.post("/hooks/ghl", content=body, headers=headers)


def _sign(key: Ed25519PrivateKey, body: bytes) -> str:
    return base64.b64encode(key.sign(body)).decode()


def test_a_replayed_webhook_id_is_rejected(
    signer: tuple[Ed25519PrivateKey, httpx2.Client], sqlite_store: sa.Engine
) -> None:
    key, http = signer
    body = _install_body("wh-1")

    first = _post(http, body, _sign(key, body))
    replay = _post(http, body, _sign(key, body))

    assert first.status_code == 200 and first.json()["status"] == "installed"
    assert (replay.status_code, replay.json()["error"]) == (409, "replayed_webhook")


@pytest.mark.parametrize("forgery", ["other key", "tampered", "missing"])
def test_a_bad_signature_is_rejected_before_anything_happens(
    signer: tuple[Ed25519PrivateKey, httpx2.Client], sqlite_store: sa.Engine, forgery: str
) -> None:
    key, http = signer
    body = _install_body("wh-2")
    signature: str | None = _sign(key, body)
    if forgery == "other key":
        signature = _sign(Ed25519PrivateKey.generate(), body)
    elif forgery == "tampered":
        body = body.replace(b"loc_z", b"loc_y")
    else:
        signature = None

    answer = _post(http, body, signature)

    assert (answer.status_code, answer.json()["error"]) == (401, "bad_signature")
    assert get_location(sqlite_store, "loc_z") is None
    assert get_location(sqlite_store, "loc_y") is None


def test_a_stale_webhook_is_rejected(
    signer: tuple[Ed25519PrivateKey, httpx2.Client], sqlite_store: sa.Engine
) -> None:
    key, http = signer
    body = _install_body("wh-3", datetime(2020, 1, 1, tzinfo=UTC))
    answer = _post(http, body, _sign(key, body))
    assert (answer.status_code, answer.json()["error"]) == (401, "stale_timestamp")
    assert get_location(sqlite_store, "loc_z") is None


def test_a_failed_install_asks_ghl_to_retry_and_the_retry_is_not_a_replay(
    sqlite_store: sa.Engine, loc_cipher: TokenCipher
) -> None:
    key = Ed25519PrivateKey.generate()
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    config = base_config(webhook_public_key=pem.decode())
    unreachable = OAuthApp("c", Secret("s"), "", base_url="http://127.0.0.1:9", timeout=2)
    vault = TokenVault(sqlite_store, loc_cipher, unreachable)
    agency = TokenSet(Secret("agency-token"), None, None, user_type="Company", company_id="co")
    vault.save("co", agency)
    directory = LocationDirectory(sqlite_store, config, loc_cipher)
    installer = Installer(sqlite_store, directory, vault, unreachable)
    app = create_app(engine=sqlite_store, config=config, locations=directory, installer=installer)
    event = {"type": "INSTALL", "appId": "sandbox", "locationId": "loc_z", "companyId": "co"}
    event["webhookId"] = "wh-9"
    event["timestamp"] = datetime.now(UTC).isoformat()
    body = json.dumps(event).encode()

    with serve_in_thread(app) as url, httpx2.Client(base_url=url) as http:
        first = _post(http, body, _sign(key, body))
        retry = _post(http, body, _sign(key, body))

    assert (first.status_code, first.json()["error"]) == (429, "retry_later")
    assert retry.status_code == 429  # not 409: the failed attempt's webhookId was forgotten
    assert get_location(sqlite_store, "loc_z") is None
