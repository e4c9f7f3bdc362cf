"""Inbound verification: is this request really from the user's Zap (or a signing relay)?

Two ways to prove it, both checked on the raw bytes before anything is parsed:

- `Authorization: Bearer <secret>` — what a "Webhooks by Zapier" step can send.
- Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`): a space-separated
  list of `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, keyed by the secret
  (`whsec_<base64>` decodes to the key; any other secret is used as raw UTF-8 bytes). Any
  listed `v1` signature may match (so secrets can rotate); the timestamp must be within the
  tolerance of now, in both directions, so a captured request cannot be replayed later.

Every comparison is constant time. Every failure raises `VerificationError`, whose message
says what was wrong without echoing credentials.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

from ghlsync._secret import Secret

DEFAULT_TOLERANCE_SECONDS = 300.0  # the Standard Webhooks reference libraries use ±5 minutes

_WHSEC_PREFIX = "whsec_"


class VerificationError(Exception):
    """The request's credentials are missing or wrong; answered 401."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Verified:
    """How a request proved itself, and the Standard Webhooks id when it had one."""

    scheme: str  # "bearer" | "standard-webhooks"
    webhook_id: str | None = None


class InboundVerifier:
    """Checks requests against one connection secret; build once, reuse per request."""

    __slots__ = ("_bearer", "_hmac_key", "_tolerance")

    def __init__(
        self, secret: Secret | str, *, tolerance_seconds: float = DEFAULT_TOLERANCE_SECONDS
    ) -> None:
        value = secret.reveal() if isinstance(secret, Secret) else secret
        if not value:
            raise ValueError("the inbound webhook secret is empty")
        # Compared as digests: equal lengths, so not even the secret's length leaks.
        self._bearer = hashlib.sha256(value.encode()).digest()
        self._hmac_key = signing_key(value)
        self._tolerance = tolerance_seconds

    def verify(self, headers: Mapping[str, str], body: bytes, *, now: float) -> Verified:
        """Accept the request or raise `VerificationError` (headers: lower-case names)."""
        if "webhook-signature" in headers:
            return self._verify_signature(headers, body, now)
        authorization = headers.get("authorization")
        if authorization is None:
            raise VerificationError(
                "missing_credentials",
                "send 'Authorization: Bearer <secret>' or Standard Webhooks signature headers",
            )
        self._verify_bearer(authorization)
        return Verified("bearer")

    def _verify_bearer(self, authorization: str) -> None:
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise VerificationError(
                "bad_credentials", "the Authorization header must be 'Bearer <secret>'"
            )
        presented = hashlib.sha256(token.strip().encode()).digest()
        if not hmac.compare_digest(presented, self._bearer):
            raise VerificationError("bad_credentials", "the bearer secret does not match")

    def _verify_signature(self, headers: Mapping[str, str], body: bytes, now: float) -> Verified:
        webhook_id = headers.get("webhook-id", "")
        timestamp = headers.get("webhook-timestamp", "")
        if not webhook_id or not timestamp:
            raise VerificationError(
                "bad_signature",
                "a webhook-signature needs the webhook-id and webhook-timestamp headers",
            )
        self._check_timestamp(timestamp, now)
        expected = self._sign(webhook_id, timestamp, body)
        if not any(hmac.compare_digest(expected, sig) for sig in _v1_signatures(headers)):
            raise VerificationError(
                "bad_signature", "no v1 signature in webhook-signature matches the body"
            )
        return Verified("standard-webhooks", webhook_id)

    def _check_timestamp(self, timestamp: str, now: float) -> None:
        try:
            sent = int(timestamp)
        except ValueError:
            raise VerificationError(
                "bad_signature", "webhook-timestamp must be an integer (Unix seconds)"
            ) from None
        if abs(now - sent) > self._tolerance:
            raise VerificationError(
                "stale_timestamp",
                f"webhook-timestamp is more than {self._tolerance:g} s away from the "
                "server's clock",
            )

    def _sign(self, webhook_id: str, timestamp: str, body: bytes) -> bytes:
        content = f"{webhook_id}.{timestamp}.".encode() + body
        return hmac.new(self._hmac_key, content, hashlib.sha256).digest()


def signing_key(secret: str) -> bytes:
    """The HMAC key for a secret: base64-decoded after `whsec_`, else the raw UTF-8 bytes."""
    if secret.startswith(_WHSEC_PREFIX):
        try:
            return base64.b64decode(secret[len(_WHSEC_PREFIX) :], validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("a 'whsec_' secret must be followed by valid base64") from None
    return secret.encode()


def sign(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """A `webhook-signature` header value (`v1,<base64>`), as a Standard Webhooks sender makes."""
    content = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(signing_key(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def _v1_signatures(headers: Mapping[str, str]) -> list[bytes]:
    """The decoded `v1` entries; other versions (`v1a`) and malformed entries are skipped."""
    found: list[bytes] = []
    for entry in headers.get("webhook-signature", "").split():
        version, _, encoded = entry.partition(",")
        if version != "v1":
            continue
        try:
            found.append(base64.b64decode(encoded, validate=True))
        except (binascii.Error, ValueError):
            continue
    return found
