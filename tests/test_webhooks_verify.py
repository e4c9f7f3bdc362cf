"""GHL webhook verification with real keys: Ed25519, legacy RSA, timestamps and replays."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ghlsync._clock import FakeClock
from ghlsync.ghl._webhooks import (
    GHL_RSA_PUBLIC_KEY_PEM,
    InvalidSignature,
    MalformedWebhook,
    MemoryReplayGuard,
    MissingSignature,
    ReplayedWebhook,
    SqlReplayGuard,
    StaleTimestamp,
    WebhookVerificationError,
    WebhookVerifier,
    load_rsa_public_key,
    parse_timestamp,
)
from ghlsync.sandbox._state import SandboxState
from ghlsync.sandbox._webhooks import WebhookDispatcher
from ghlsync.store import create_engine, migrate
from ghlsync.store._tables import ghl_webhooks_seen

ED_KEY = Ed25519PrivateKey.generate()
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem(key: Ed25519PrivateKey | rsa.RSAPrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def _body(clock: FakeClock, webhook_id: str = "wh_1", **extra: Any) -> bytes:
    event = {"type": "ContactCreate", "locationId": "loc1", "id": "c1"}
    event |= {"timestamp": _iso(clock.now()), "webhookId": webhook_id, **extra}
    return json.dumps(event, separators=(",", ":")).encode()


def _ed_sign(body: bytes, key: Ed25519PrivateKey = ED_KEY) -> dict[str, str]:
    return {"x-ghl-signature": base64.b64encode(key.sign(body)).decode()}


def _rsa_sign(body: bytes, key: rsa.RSAPrivateKey = RSA_KEY) -> dict[str, str]:
    signature = key.sign(body, padding.PKCS1v15(), hashes.SHA256())
    return {"x-wh-signature": base64.b64encode(signature).decode()}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def verifier(clock: FakeClock) -> WebhookVerifier:
    return WebhookVerifier(ed25519_public_key=_pem(ED_KEY), clock=clock)


def _raw_public() -> bytes:
    return ED_KEY.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )


def _der_public() -> bytes:
    return ED_KEY.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.mark.parametrize(
    "key",
    [
        _pem(ED_KEY),
        base64.b64encode(_raw_public()).decode(),
        _raw_public().hex(),
        base64.b64encode(_der_public()).decode(),
        _raw_public(),
    ],
    ids=["pem", "base64-raw", "hex", "base64-spki", "raw-bytes"],
)
def test_valid_ed25519_is_accepted_with_any_key_encoding(clock: FakeClock, key: str) -> None:
    verifier = WebhookVerifier(ed25519_public_key=key, clock=clock)
    body = _body(clock)
    event = verifier.verify(body, _ed_sign(body))
    assert event["id"] == "c1"
    assert event["webhookId"] == "wh_1"


def test_header_name_is_case_insensitive(verifier: WebhookVerifier, clock: FakeClock) -> None:
    body = _body(clock)
    headers = {"X-GHL-Signature": _ed_sign(body)["x-ghl-signature"]}
    assert verifier.verify(body, headers)["type"] == "ContactCreate"


def test_tampered_body_is_rejected(verifier: WebhookVerifier, clock: FakeClock) -> None:
    body = _body(clock)
    headers = _ed_sign(body)
    tampered = body.replace(b'"c1"', b'"c2"')
    with pytest.raises(InvalidSignature, match="does not match the body"):
        verifier.verify(tampered, headers)


def test_reserialised_body_is_rejected(verifier: WebhookVerifier, clock: FakeClock) -> None:
    body = _body(clock)
    pretty = json.dumps(json.loads(body), indent=2).encode()  # same data, other bytes
    with pytest.raises(InvalidSignature):
        verifier.verify(pretty, _ed_sign(body))


def test_wrong_key_is_rejected(verifier: WebhookVerifier, clock: FakeClock) -> None:
    body = _body(clock)
    with pytest.raises(InvalidSignature):
        verifier.verify(body, _ed_sign(body, Ed25519PrivateKey.generate()))


@pytest.mark.parametrize(
    ("value", "message"),
    [("not base64!", "not valid base64"), (base64.b64encode(b"x" * 10).decode(), "64-byte")],
)
def test_garbled_signature_is_rejected(
    verifier: WebhookVerifier, clock: FakeClock, value: str, message: str
) -> None:
    with pytest.raises(InvalidSignature, match=message):
        verifier.verify(_body(clock), {"x-ghl-signature": value})


def test_bad_ed25519_does_not_fall_back_to_a_good_rsa(clock: FakeClock) -> None:
    verifier = WebhookVerifier(
        ed25519_public_key=_pem(ED_KEY), rsa_public_key=_pem(RSA_KEY), clock=clock
    )
    body = _body(clock)
    headers = _rsa_sign(body) | _ed_sign(body, Ed25519PrivateKey.generate())
    with pytest.raises(InvalidSignature, match="x-ghl-signature"):
        verifier.verify(body, headers)
    assert verifier.verify(body, _rsa_sign(body))["id"] == "c1"  # RSA alone is fine


def test_ed25519_header_without_a_configured_key_is_rejected(clock: FakeClock) -> None:
    verifier = WebhookVerifier(rsa_public_key=_pem(RSA_KEY), clock=clock)
    body = _body(clock)
    with pytest.raises(InvalidSignature, match="no Ed25519 public key"):
        verifier.verify(body, _ed_sign(body) | _rsa_sign(body))


def test_legacy_rsa_signature_is_accepted(clock: FakeClock) -> None:
    verifier = WebhookVerifier(rsa_public_key=_pem(RSA_KEY), clock=clock)
    body = _body(clock)
    assert verifier.verify(body, _rsa_sign(body))["webhookId"] == "wh_1"
    with pytest.raises(InvalidSignature, match="x-wh-signature"):
        verifier.verify(_body(clock, "wh_2"), _rsa_sign(body))


def test_default_rsa_key_is_ghls_published_key(clock: FakeClock) -> None:
    key = load_rsa_public_key(GHL_RSA_PUBLIC_KEY_PEM)
    assert key is not None and key.key_size == 4096
    body = _body(clock)
    with pytest.raises(InvalidSignature):  # our own key is not GHL's
        WebhookVerifier(clock=clock).verify(body, _rsa_sign(body))


def test_legacy_path_can_be_disabled(clock: FakeClock) -> None:
    body = _body(clock)
    with pytest.raises(InvalidSignature, match="disabled"):
        WebhookVerifier(rsa_public_key=None, clock=clock).verify(body, _rsa_sign(body))


def test_missing_signature(verifier: WebhookVerifier, clock: FakeClock) -> None:
    with pytest.raises(MissingSignature, match="x-ghl-signature"):
        verifier.verify(_body(clock), {"content-type": "application/json"})


@pytest.mark.parametrize("offset", [-301.0, 301.0, -3600.0])
def test_timestamp_outside_the_window_is_stale(
    verifier: WebhookVerifier, clock: FakeClock, offset: float
) -> None:
    body = _body(clock, timestamp=_iso(clock.now() + offset))
    with pytest.raises(StaleTimestamp, match="within 300 s"):
        verifier.verify(body, _ed_sign(body))


@pytest.mark.parametrize("offset", [-299.0, 299.0])
def test_timestamp_inside_the_window_passes(
    verifier: WebhookVerifier, clock: FakeClock, offset: float
) -> None:
    body = _body(clock, timestamp=_iso(clock.now() + offset))
    assert verifier.verify(body, _ed_sign(body))


@pytest.mark.parametrize("stamp", [None, "yesterday", "2025-01-28T14:35:00", "NaN", True])
def test_missing_or_unreadable_timestamp_is_rejected(
    verifier: WebhookVerifier, clock: FakeClock, stamp: object
) -> None:
    body = _body(clock, timestamp=stamp)
    with pytest.raises(StaleTimestamp, match="no readable"):
        verifier.verify(body, _ed_sign(body))


def test_timestamp_formats() -> None:
    assert parse_timestamp("2025-01-28T14:35:00Z") == 1738074900.0
    assert parse_timestamp("2025-01-28T14:35:00.000Z") == 1738074900.0
    assert parse_timestamp(1738074900000) == 1738074900.0
    assert parse_timestamp("1738074900") == 1738074900.0


def test_replayed_webhook_id_is_rejected(verifier: WebhookVerifier, clock: FakeClock) -> None:
    body = _body(clock)
    verifier.verify(body, _ed_sign(body))
    with pytest.raises(ReplayedWebhook, match="wh_1"):
        verifier.verify(body, _ed_sign(body))
    other = _body(clock, "wh_2")
    assert verifier.verify(other, _ed_sign(other))["webhookId"] == "wh_2"


def test_missing_webhook_id_is_rejected(verifier: WebhookVerifier, clock: FakeClock) -> None:
    body = _body(clock, webhookId=None)
    with pytest.raises(ReplayedWebhook, match="no `webhookId`"):
        verifier.verify(body, _ed_sign(body))


def test_rejected_delivery_does_not_burn_its_id(
    verifier: WebhookVerifier, clock: FakeClock
) -> None:
    stale = _body(clock, timestamp=_iso(clock.now() - 1000))
    with pytest.raises(StaleTimestamp):
        verifier.verify(stale, _ed_sign(stale))
    fresh = _body(clock)
    assert verifier.verify(fresh, _ed_sign(fresh))


def test_signed_non_json_body_is_malformed(verifier: WebhookVerifier) -> None:
    for body in (b"not json", b"[1, 2]"):
        with pytest.raises(MalformedWebhook):
            verifier.verify(body, _ed_sign(body))


def test_errors_share_one_base_class() -> None:
    for cls in (InvalidSignature, MissingSignature, StaleTimestamp, ReplayedWebhook):
        assert issubclass(cls, WebhookVerificationError)


def test_accepts_what_the_sandbox_signs(clock: FakeClock) -> None:
    dispatcher = WebhookDispatcher(SandboxState())
    verifier = WebhookVerifier(ed25519_public_key=dispatcher.public_key_pem(), clock=clock)
    body = _body(clock)
    headers = {"x-ghl-signature": dispatcher.sign(body)}
    assert verifier.verify(body, headers)["id"] == "c1"


async def test_averify_runs_the_same_checks(verifier: WebhookVerifier, clock: FakeClock) -> None:
    body = _body(clock)
    assert (await verifier.averify(body, _ed_sign(body)))["id"] == "c1"
    with pytest.raises(ReplayedWebhook):
        await verifier.averify(body, _ed_sign(body))


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    engine = create_engine(database_url)
    migrate(engine)
    yield engine
    engine.dispose()


def test_sql_replay_guard_is_shared_between_processes(engine: sa.Engine, clock: FakeClock) -> None:
    second = create_engine(engine.url.render_as_string(hide_password=False))
    try:
        a = WebhookVerifier(_pem(ED_KEY), replay_guard=SqlReplayGuard(engine), clock=clock)
        b = WebhookVerifier(_pem(ED_KEY), replay_guard=SqlReplayGuard(second), clock=clock)
        body = _body(clock)
        a.verify(body, _ed_sign(body))
        with pytest.raises(ReplayedWebhook):
            b.verify(body, _ed_sign(body))
    finally:
        second.dispose()


def test_sql_replay_guard_purges_ids_older_than_the_window(
    engine: sa.Engine, clock: FakeClock
) -> None:
    verifier = WebhookVerifier(_pem(ED_KEY), replay_guard=SqlReplayGuard(engine), clock=clock)
    first = _body(clock, "old")
    verifier.verify(first, _ed_sign(first))
    clock.advance(601)  # past twice the tolerance: "old" could only come back stale
    fresh = _body(clock, "new")
    verifier.verify(fresh, _ed_sign(fresh))
    with engine.connect() as conn:
        ids = conn.execute(sa.select(ghl_webhooks_seen.c.webhook_id)).scalars().all()
    assert ids == ["new"]


def test_memory_replay_guard_forgets_after_keep_for() -> None:
    guard = MemoryReplayGuard()
    assert guard.first_sighting("a", 0.0, 10.0)
    assert not guard.first_sighting("a", 5.0, 10.0)
    assert guard.first_sighting("b", 20.0, 10.0)
    assert guard.first_sighting("a", 21.0, 10.0)
