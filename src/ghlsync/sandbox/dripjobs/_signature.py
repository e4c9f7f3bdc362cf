"""Standard Webhooks verification of a write-back, written apart from ghlsync's own signer.

The emulator checks ghlsync's outbound signatures with this independent reading of the spec
(standardwebhooks.com): key = base64-decode of the secret after `whsec_`; signed content
`{webhook-id}.{webhook-timestamp}.{body}`; `webhook-signature` a space-separated list of
`v1,<base64 HMAC-SHA256>`, any one may match; the timestamp within a tolerance of now.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping

TOLERANCE_SECONDS = 300


class SignatureError(Exception):
    """Why a write-back was refused (answered 401)."""


def key_of(secret: str) -> bytes:
    """The HMAC key of a `whsec_<base64>` secret."""
    if not secret.startswith("whsec_"):
        raise ValueError("a write-back secret starts with 'whsec_'")
    try:
        return base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except binascii.Error as exc:
        raise ValueError("the part after 'whsec_' is not base64") from exc


def signature(key: bytes, webhook_id: str, timestamp: str, body: bytes) -> str:
    """The `v1,<base64>` entry a sender puts in `webhook-signature`."""
    content = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify(
    key: bytes,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float,
    tolerance: float = TOLERANCE_SECONDS,
) -> str:
    """The verified `webhook-id`, or `SignatureError` (headers: lower-case names)."""
    webhook_id = headers.get("webhook-id", "")
    stamp = headers.get("webhook-timestamp", "")
    listed = headers.get("webhook-signature", "")
    if not (webhook_id and stamp and listed):
        raise SignatureError("webhook-id, webhook-timestamp and webhook-signature are required")
    if not stamp.isdigit():
        raise SignatureError("webhook-timestamp is not Unix seconds")
    if abs(now - int(stamp)) > tolerance:
        raise SignatureError("webhook-timestamp is outside the tolerance")
    expected = signature(key, webhook_id, stamp, body).encode()
    for entry in listed.split():
        if entry.startswith("v1,") and hmac.compare_digest(entry.encode(), expected):
            return webhook_id
    raise SignatureError("no v1 signature matches")
