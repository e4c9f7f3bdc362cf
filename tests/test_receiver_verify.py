"""Inbound verification: bearer secrets and Standard Webhooks signatures, on raw bytes."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ghlsync._secret import Secret
from ghlsync.dripjobs import InboundVerifier, VerificationError, sign, signing_key

NOW = 1_800_000_000
SECRET = "zap-secret-0123456789"
WHSEC = "whsec_" + base64.b64encode(b"k" * 32).decode()
BODY = b'{"customer_id": "c1", "first_name": "Ava"}'


def signed_headers(
    secret: str, body: bytes, *, ts: int = NOW, wid: str = "msg_1"
) -> dict[str, str]:
    return {
        "webhook-id": wid,
        "webhook-timestamp": str(ts),
        "webhook-signature": sign(secret, wid, ts, body),
    }


def reason(verifier: InboundVerifier, headers: dict[str, str], body: bytes = BODY) -> str:
    with pytest.raises(VerificationError) as caught:
        verifier.verify(headers, body, now=NOW)
    return caught.value.code


def test_bearer_with_the_secret_is_accepted() -> None:
    verified = InboundVerifier(Secret(SECRET)).verify(
        {"authorization": f"Bearer {SECRET}"}, BODY, now=NOW
    )
    assert verified.scheme == "bearer"
    assert verified.webhook_id is None


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "missing_credentials"),
        ({"authorization": "Bearer wrong-secret"}, "bad_credentials"),
        ({"authorization": f"Bearer {SECRET}x"}, "bad_credentials"),
        ({"authorization": f"Basic {SECRET}"}, "bad_credentials"),
        ({"authorization": "Bearer"}, "bad_credentials"),
    ],
)
def test_bearer_refusals(headers: dict[str, str], code: str) -> None:
    assert reason(InboundVerifier(SECRET), headers) == code


def test_bearer_error_does_not_echo_the_secret() -> None:
    with pytest.raises(VerificationError) as caught:
        InboundVerifier(SECRET).verify({"authorization": "Bearer guess"}, BODY, now=NOW)
    assert SECRET not in str(caught.value)
    assert "guess" not in str(caught.value)


@pytest.mark.parametrize("secret", [SECRET, WHSEC])
def test_standard_webhooks_signature_is_accepted(secret: str) -> None:
    verified = InboundVerifier(secret).verify(signed_headers(secret, BODY), BODY, now=NOW)
    assert verified.scheme == "standard-webhooks"
    assert verified.webhook_id == "msg_1"


def test_signature_matches_the_spec_by_hand() -> None:
    # The spec's recipe, computed independently of `sign`: base64(HMAC(key, "id.ts.body")).
    key = base64.b64decode(WHSEC.removeprefix("whsec_"))
    digest = hmac.new(key, b"msg_1.%d." % NOW + BODY, hashlib.sha256).digest()
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(NOW),
        "webhook-signature": "v1," + base64.b64encode(digest).decode(),
    }
    assert InboundVerifier(WHSEC).verify(headers, BODY, now=NOW).webhook_id == "msg_1"


def test_any_of_several_signatures_may_match() -> None:
    headers = signed_headers(WHSEC, BODY)
    other = sign("whsec_" + base64.b64encode(b"o" * 32).decode(), "msg_1", NOW, BODY)
    headers["webhook-signature"] = (
        f"v1a,bm90LWVkMjU1MTk= {other} garbage {headers['webhook-signature']}"
    )
    assert InboundVerifier(WHSEC).verify(headers, BODY, now=NOW).scheme == "standard-webhooks"


def test_tampered_body_is_refused() -> None:
    headers = signed_headers(WHSEC, BODY)
    assert reason(InboundVerifier(WHSEC), headers, BODY.replace(b"Ava", b"Eve")) == "bad_signature"


def test_signature_with_another_secret_is_refused() -> None:
    headers = signed_headers(SECRET + "-old", BODY)
    assert reason(InboundVerifier(SECRET), headers) == "bad_signature"


@pytest.mark.parametrize("skew", [-301, 301, -10_000])
def test_timestamp_outside_the_window_is_refused(skew: int) -> None:
    headers = signed_headers(WHSEC, BODY, ts=NOW + skew)
    assert reason(InboundVerifier(WHSEC), headers) == "stale_timestamp"


def test_timestamp_inside_the_window_is_accepted() -> None:
    headers = signed_headers(WHSEC, BODY, ts=NOW - 299)
    assert InboundVerifier(WHSEC).verify(headers, BODY, now=NOW).webhook_id == "msg_1"


def test_tolerance_is_configurable() -> None:
    headers = signed_headers(WHSEC, BODY, ts=NOW - 60)
    assert reason(InboundVerifier(WHSEC, tolerance_seconds=30), headers) == "stale_timestamp"


@pytest.mark.parametrize(
    "change",
    [
        {"webhook-id": ""},
        {"webhook-timestamp": ""},
        {"webhook-timestamp": "yesterday"},
        {"webhook-signature": "v1,not base64!!"},
        {"webhook-signature": "v1"},
        {"webhook-signature": ""},
    ],
)
def test_malformed_signature_headers_are_refused(change: dict[str, str]) -> None:
    headers = signed_headers(WHSEC, BODY) | change
    assert reason(InboundVerifier(WHSEC), headers) in {"bad_signature", "stale_timestamp"}


def test_signature_headers_take_precedence_over_a_bearer() -> None:
    # A valid bearer cannot rescue a wrong signature: the stronger proof is checked.
    headers = signed_headers("other-secret", BODY) | {"authorization": f"Bearer {SECRET}"}
    assert reason(InboundVerifier(SECRET), headers) == "bad_signature"


def test_empty_secret_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="empty"):
        InboundVerifier("")


def test_whsec_secret_must_be_base64() -> None:
    with pytest.raises(ValueError, match="base64"):
        signing_key("whsec_%%%")


@settings(max_examples=200)
@given(body=st.binary(max_size=512), position=st.integers(min_value=0), flip=st.integers(1, 255))
def test_any_signed_body_verifies_and_any_changed_byte_fails(
    body: bytes, position: int, flip: int
) -> None:
    verifier = InboundVerifier(WHSEC)
    headers = signed_headers(WHSEC, body)
    assert verifier.verify(headers, body, now=NOW).webhook_id == "msg_1"
    tampered = bytearray(body + b"!")
    tampered[position % len(tampered)] ^= flip
    assert reason(verifier, headers, bytes(tampered)) == "bad_signature"
