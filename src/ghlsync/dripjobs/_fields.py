"""The receiver's own field: the sender's dedupe key.

(The source timestamp that orders updates is the mapping's business: each event rule names
its `timestamp` field, read by `Mapper.source_updated_at`.)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

DELIVERY_ID = "delivery_id"


def delivery_id(payload: Mapping[str, Any], headers: Mapping[str, str]) -> str | None:
    """The sender's dedupe key: the `delivery_id` field, else the `webhook-id` header."""
    value = payload.get(DELIVERY_ID)
    if value is not None and not isinstance(value, dict | list) and str(value).strip():
        return str(value).strip()
    header = headers.get("webhook-id", "").strip()
    return header or None
