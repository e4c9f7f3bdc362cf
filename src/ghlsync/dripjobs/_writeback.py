"""The write-back wire format: what ghlsync POSTs to a Zapier Catch Hook (or the emulator).

Body: `{"type": "<action>", "id": "<write-back id>", "timestamp": "<ISO-8601 UTC>",
"data": {...flat fields...}}`, compact JSON, built once when the write-back is queued and
sent byte for byte on every attempt. Headers: Standard Webhooks (`webhook-id` = the
write-back id, identical on every retry so the receiver can dedupe; `webhook-timestamp` = the
attempt's Unix seconds; `webhook-signature` = `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`
keyed by the `whsec_` secret, see `_verify.sign`).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime

from ghlsync.dripjobs._verify import sign

__all__ = ["new_writeback_id", "writeback_body", "writeback_headers"]


def new_writeback_id() -> str:
    """A fresh write-back id: `wb_` and 32 hex digits."""
    return "wb_" + uuid.uuid4().hex


def writeback_body(action: str, writeback_id: str, when: float, data: Mapping[str, str]) -> bytes:
    """The JSON body; empty fields are left out (a Zap maps only what is there)."""
    stamp = datetime.fromtimestamp(when, UTC).isoformat(timespec="milliseconds")
    document = {
        "type": action,
        "id": writeback_id,
        "timestamp": stamp.replace("+00:00", "Z"),
        "data": {k: str(v) for k, v in sorted(data.items()) if v not in (None, "")},
    }
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def writeback_headers(
    secret: str | None, writeback_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """The headers of one attempt; unsigned (no `webhook-signature`) without a secret."""
    headers = {
        "content-type": "application/json",
        "webhook-id": writeback_id,
        "webhook-timestamp": str(timestamp),
    }
    if secret:
        headers["webhook-signature"] = sign(secret, writeback_id, timestamp, body)
    return headers
