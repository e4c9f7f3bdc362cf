"""Verifying GHL webhooks on the raw body, before anything parses it.

GHL signs each delivery one of two ways (docs/oauth/WebhookAuthentication.md and the official
SDK READMEs):

- `x-ghl-signature`: base64 Ed25519 signature of the raw body (current). Its public key is
  configured (PEM, base64 or hex); when this header is present it is verified and nothing
  else is tried, so a forged or broken Ed25519 signature cannot downgrade to the legacy path.
- `x-wh-signature`: base64 RSASSA-PKCS1-v1_5 / SHA-256 signature of the raw body (legacy,
  announced for removal on 2026-07-01). GHL's published public key is the default.

Then, on the parsed body: `timestamp` must be within `tolerance` seconds of our clock, and
`webhookId` must not have been accepted before (a `ReplayGuard` remembers ids for twice the
tolerance: a timestamp may run up to `tolerance` ahead, and anything older is stale anyway).

Signature checks are done by `cryptography` on public keys, so there is no secret to compare;
header names and the bytes are never compared with `==` against anything secret.

    WebhookVerificationError
    ├── MissingSignature    no x-ghl-signature / x-wh-signature header
    ├── InvalidSignature    bad base64, wrong length, wrong key, tampered body, no key set
    ├── MalformedWebhook    signature fine, but the body is not a JSON object ghlsync can
    │                       hold (too deep, a number out of range, a lone surrogate, U+0000)
    ├── StaleTimestamp      timestamp missing, unreadable or outside the window
    └── ReplayedWebhook     webhookId seen before (or missing)
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import math
import threading
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final, Protocol

import sqlalchemy as sa
from cryptography.exceptions import InvalidSignature as _CryptoInvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from ghlsync._clock import SYSTEM_CLOCK, Clock
from ghlsync._json import UnsafeJSON, load_json
from ghlsync.store._tables import ghl_webhooks_seen

__all__ = [
    "DEFAULT",
    "GHL_RSA_PUBLIC_KEY_PEM",
    "InvalidSignature",
    "MalformedWebhook",
    "MemoryReplayGuard",
    "MissingSignature",
    "ReplayGuard",
    "ReplayedWebhook",
    "SqlReplayGuard",
    "StaleTimestamp",
    "WebhookVerificationError",
    "WebhookVerifier",
]

# Published by GHL in docs/oauth/WebhookAuthentication.md ("The public key in this doc is the
# one to use to validate the webhook payload"). A public key: a fact, not a secret.
GHL_RSA_PUBLIC_KEY_PEM: Final = """-----BEGIN PUBLIC KEY-----
MIICIjANBgkqhkiG9w0BAQEFAAOCAg8AMIICCgKCAgEAokvo/r9tVgcfZ5DysOSC
Frm602qYV0MaAiNnX9O8KxMbiyRKWeL9JpCpVpt4XHIcBOK4u3cLSqJGOLaPuXw6
dO0t6Q/ZVdAV5Phz+ZtzPL16iCGeK9po6D6JHBpbi989mmzMryUnQJezlYJ3DVfB
csedpinheNnyYeFXolrJvcsjDtfAeRx5ByHQmTnSdFUzuAnC9/GepgLT9SM4nCpv
uxmZMxrJt5Rw+VUaQ9B8JSvbMPpez4peKaJPZHBbU3OdeCVx5klVXXZQGNHOs8gF
3kvoV5rTnXV0IknLBXlcKKAQLZcY/Q9rG6Ifi9c+5vqlvHPCUJFT5XUGG5RKgOKU
J062fRtN+rLYZUV+BjafxQauvC8wSWeYja63VSUruvmNj8xkx2zE/Juc+yjLjTXp
IocmaiFeAO6fUtNjDeFVkhf5LNb59vECyrHD2SQIrhgXpO4Q3dVNA5rw576PwTzN
h/AMfHKIjE4xQA1SZuYJmNnmVZLIZBlQAF9Ntd03rfadZ+yDiOXCCs9FkHibELhC
HULgCsnuDJHcrGNd5/Ddm5hxGQ0ASitgHeMZ0kcIOwKDOzOU53lDza6/Y09T7sYJ
PQe7z0cvj7aE4B+Ax1ZoZGPzpJlZtGXCsu9aTEGEnKzmsFqwcSsnw3JB31IGKAyk
T1hhTiaCeIY/OwwwNUY2yvcCAwEAAQ==
-----END PUBLIC KEY-----
"""

ED25519_HEADER: Final = "x-ghl-signature"
_MAX_SEEN_KEY: Final = 128  # ghl_webhooks_seen.webhook_id
RSA_HEADER: Final = "x-wh-signature"


class _Default:
    """Marker for "use GHL's published key"."""

    def __repr__(self) -> str:
        return "DEFAULT"


DEFAULT: Final = _Default()

KeyInput = str | bytes


class WebhookVerificationError(Exception):
    """A GHL webhook we must not act on; the message says why (never echoes the body)."""


class MissingSignature(WebhookVerificationError):
    """Neither x-ghl-signature nor x-wh-signature was sent."""


class InvalidSignature(WebhookVerificationError):
    """The signature does not match the raw body under the configured key."""


class MalformedWebhook(WebhookVerificationError):
    """The signed body is not a JSON object."""


class StaleTimestamp(WebhookVerificationError):
    """The body's `timestamp` is missing or outside the accepted window."""


class ReplayedWebhook(WebhookVerificationError):
    """The body's `webhookId` was accepted before (or is missing, so replays can't be told)."""


class ReplayGuard(Protocol):
    """Remembers accepted webhook ids for a while."""

    def first_sighting(self, webhook_id: str, now: float, keep_for: float) -> bool:
        """Record `webhook_id` at `now`; False if it was already recorded (a replay).

        Entries older than `keep_for` seconds may be forgotten.
        """
        ...


class MemoryReplayGuard:
    """Replay guard for one process."""

    def __init__(self) -> None:
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def first_sighting(self, webhook_id: str, now: float, keep_for: float) -> bool:
        """Record the id; False when it is already there."""
        with self._lock:
            cutoff = now - keep_for
            # Insertion order is arrival order, so the oldest are at the front.
            while self._seen and next(iter(self._seen.values())) < cutoff:
                del self._seen[next(iter(self._seen))]
            if webhook_id in self._seen:
                return False
            self._seen[webhook_id] = now
            return True


class SqlReplayGuard:
    """Replay guard on the `ghl_webhooks_seen` table, shared by every receiver process.

    The primary key does the deciding: an insert that collides is a replay, whatever process
    inserted first. Old rows are purged at most once per `keep_for / 2` per process.
    """

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine
        self._last_purge = 0.0

    def first_sighting(self, webhook_id: str, now: float, keep_for: float) -> bool:
        """Insert the id; False when the insert collides with an earlier one."""
        if now - self._last_purge >= keep_for / 2:
            self._purge(now - keep_for)
            self._last_purge = now
        try:
            with self._engine.begin() as conn:
                conn.execute(ghl_webhooks_seen.insert().values(webhook_id=webhook_id, seen_at=now))
        except sa.exc.IntegrityError:
            return False
        return True

    def _purge(self, cutoff: float) -> None:
        with self._engine.begin() as conn:
            conn.execute(ghl_webhooks_seen.delete().where(ghl_webhooks_seen.c.seen_at < cutoff))


class WebhookVerifier:
    """Checks signature, timestamp and replay of GHL webhook deliveries; see the module doc."""

    def __init__(
        self,
        ed25519_public_key: KeyInput | Ed25519PublicKey | None = None,
        rsa_public_key: KeyInput | RSAPublicKey | _Default | None = DEFAULT,
        tolerance: float = 300.0,
        replay_guard: ReplayGuard | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._ed25519 = load_ed25519_public_key(ed25519_public_key)
        if isinstance(rsa_public_key, _Default):
            rsa_public_key = GHL_RSA_PUBLIC_KEY_PEM
        self._rsa = load_rsa_public_key(rsa_public_key)
        self._tolerance = tolerance
        self._guard: ReplayGuard = replay_guard or MemoryReplayGuard()
        self._clock = clock

    def verify(self, raw_body: bytes, headers: Mapping[str, str]) -> dict[str, Any]:
        """The parsed event, once signature, timestamp and webhookId all check out."""
        self.verify_signature(raw_body, headers)
        event = _parse(raw_body)
        now = self._clock.now()
        self._check_timestamp(event, now)
        self._check_replay(event, now)
        return event

    async def averify(self, raw_body: bytes, headers: Mapping[str, str]) -> dict[str, Any]:
        """`verify` off the event loop (the replay guard may touch the database)."""
        return await asyncio.to_thread(self.verify, raw_body, dict(headers.items()))

    def verify_signature(self, raw_body: bytes, headers: Mapping[str, str]) -> None:
        """Raise unless the raw body carries a valid GHL signature."""
        low = {k.lower(): v for k, v in headers.items()}
        if ED25519_HEADER in low:
            self._verify_ed25519(raw_body, low[ED25519_HEADER])
        elif RSA_HEADER in low:
            self._verify_rsa(raw_body, low[RSA_HEADER])
        else:
            raise MissingSignature(f"no {ED25519_HEADER} or {RSA_HEADER} header")

    def _verify_ed25519(self, raw_body: bytes, header: str) -> None:
        if self._ed25519 is None:
            raise InvalidSignature(
                f"{ED25519_HEADER} received but no Ed25519 public key is configured"
            )
        signature = _b64(header, ED25519_HEADER)
        if len(signature) != 64:
            raise InvalidSignature(f"{ED25519_HEADER} is not a 64-byte Ed25519 signature")
        try:
            self._ed25519.verify(signature, raw_body)
        except _CryptoInvalidSignature:
            raise InvalidSignature(f"{ED25519_HEADER} does not match the body") from None

    def _verify_rsa(self, raw_body: bytes, header: str) -> None:
        if self._rsa is None:
            raise InvalidSignature(f"{RSA_HEADER} received but the legacy RSA key is disabled")
        signature = _b64(header, RSA_HEADER)
        try:
            self._rsa.verify(signature, raw_body, padding.PKCS1v15(), hashes.SHA256())
        except _CryptoInvalidSignature:
            raise InvalidSignature(f"{RSA_HEADER} does not match the body") from None

    def _check_timestamp(self, event: Mapping[str, Any], now: float) -> None:
        stamp = parse_timestamp(event.get("timestamp"))
        if stamp is None:
            raise StaleTimestamp("webhook has no readable `timestamp`")
        skew = stamp - now
        if abs(skew) > self._tolerance:
            direction = "old" if skew < 0 else "in the future"
            raise StaleTimestamp(
                f"webhook timestamp is {abs(skew):.0f} s {direction}"
                f" (accepted: within {self._tolerance:.0f} s)"
            )

    def _check_replay(self, event: Mapping[str, Any], now: float) -> None:
        webhook_id = event.get("webhookId")
        if not isinstance(webhook_id, str) or not webhook_id:
            raise ReplayedWebhook("webhook has no `webhookId`, so a replay cannot be ruled out")
        if not self._guard.first_sighting(seen_key(webhook_id), now, 2 * self._tolerance):
            raise ReplayedWebhook(f"webhookId {webhook_id[:64]!r} was already accepted")


def seen_key(webhook_id: str) -> str:
    """The replay guard's key: the id itself, or a hash of one too long for its column."""
    if len(webhook_id) <= _MAX_SEEN_KEY:
        return webhook_id
    return "sha256:" + hashlib.sha256(webhook_id.encode()).hexdigest()


def load_ed25519_public_key(key: KeyInput | Ed25519PublicKey | None) -> Ed25519PublicKey | None:
    """An Ed25519 public key from SPKI PEM, raw 32 bytes, 64 hex digits, or base64 of either."""
    if key is None or isinstance(key, Ed25519PublicKey):
        return key
    if isinstance(key, str) and "BEGIN PUBLIC KEY" in key:
        loaded = serialization.load_pem_public_key(key.encode())
        if not isinstance(loaded, Ed25519PublicKey):
            raise ValueError("ed25519_public_key: the PEM holds a key that is not Ed25519")
        return loaded
    raw = _key_bytes(key)
    if len(raw) != 32:
        der = serialization.load_der_public_key(raw)
        if not isinstance(der, Ed25519PublicKey):
            raise ValueError("ed25519_public_key: expected 32 raw bytes or an Ed25519 SPKI key")
        return der
    return Ed25519PublicKey.from_public_bytes(raw)


def load_rsa_public_key(key: KeyInput | RSAPublicKey | None) -> RSAPublicKey | None:
    """An RSA public key from SPKI PEM (str or bytes) or DER bytes."""
    if key is None or isinstance(key, RSAPublicKey):
        return key
    data = key.encode() if isinstance(key, str) else key
    pem = b"BEGIN" in data
    loaded = (
        serialization.load_pem_public_key(data) if pem else serialization.load_der_public_key(data)
    )
    if not isinstance(loaded, RSAPublicKey):
        raise ValueError("rsa_public_key: the key is not an RSA public key")
    return loaded


def _key_bytes(key: KeyInput) -> bytes:
    if isinstance(key, bytes):
        return key
    text = key.strip()
    if len(text) == 64:
        try:
            return bytes.fromhex(text)
        except ValueError:
            pass  # 64 characters of base64, not hex
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error:
        raise ValueError("ed25519_public_key: not PEM, hex or base64") from None


def parse_timestamp(value: object) -> float | None:
    """Epoch seconds from GHL's ISO 8601 `timestamp` (or epoch seconds / milliseconds)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        try:
            seconds = float(value)  # an int like 10**400 overflows here
        except OverflowError:
            return None
        if not math.isfinite(seconds):
            return None
        return seconds / 1000.0 if seconds > 1e11 else seconds
    if not isinstance(value, str) or not value:
        return None
    try:
        return parse_timestamp(float(value))
    except ValueError:
        pass  # not a number: try ISO 8601
    try:
        stamp = datetime.fromisoformat(value)
    except ValueError:
        return None
    if stamp.tzinfo is None:
        return None  # an unzoned time could be any of 24 hours
    try:
        return stamp.timestamp()
    except OverflowError:  # 9999-12-31T23:59:59-12:00 is past the last UTC datetime
        return None


def _b64(value: str, header: str) -> bytes:
    try:
        return base64.b64decode(value.strip(), validate=True)
    except binascii.Error:
        raise InvalidSignature(f"{header} is not valid base64") from None


def _parse(raw_body: bytes) -> dict[str, Any]:
    try:
        event = load_json(raw_body)
    except UnsafeJSON as exc:
        raise MalformedWebhook(f"webhook body is refused: {exc}") from None
    if not isinstance(event, dict):
        raise MalformedWebhook("webhook body is not a JSON object")
    return event
