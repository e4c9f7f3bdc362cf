"""Custom fields by key: `contact.roof_type` → the location's field id, cached in the store.

The mapping names custom fields by key (readable, stable across locations); GHL writes want
the id. Definitions are cached in `ghl_custom_fields` and fetched again on a miss, at most once
per `REFRESH_AFTER` seconds per location, so a typo cannot burn the rate budget.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from ghlsync._clock import Clock
from ghlsync.engine.flows.to_ghl._plan import PlannedCall, Sender
from ghlsync.mapping import MappingError
from ghlsync.store._tables_sync import ghl_custom_fields

REFRESH_AFTER = 300.0


class UnknownCustomFieldError(MappingError):
    """The mapping names a custom-field key the GHL location does not have."""

    def __init__(self, key: str, known: list[str]) -> None:
        shown = ", ".join(known[:20]) or "none"
        super().__init__(
            "custom_fields",
            key,
            f"is not a custom field of this GHL location (create it in GHL under Settings → "
            f"Custom Fields, or fix the key in ghlsync.yaml); known keys: {shown}",
        )


@dataclass(slots=True)
class CustomFieldResolver:
    """Turns `{key: value}` into GHL's `customFields: [{id, field_value}]` for one location."""

    engine: sa.Engine
    location_id: str
    clock: Clock

    async def resolve(self, values: Mapping[str, Any], sender: Sender) -> list[dict[str, Any]]:
        """The `customFields` list for a contact body (sorted by key for stable bodies).

        A dry run never fetches: a key missing from the cache is shown by key instead.
        """
        if not values:
            return []
        ids = self._cached()
        missing = [k for k in values if _norm(k) not in ids]
        if missing and sender.live and self._may_refresh():
            ids = await self._refresh(sender)
            missing = [k for k in values if _norm(k) not in ids]
        if missing and sender.live:
            raise UnknownCustomFieldError(missing[0], sorted(k for k in ids if k))
        return [_field(ids.get(_norm(k)), k, values[k]) for k in sorted(values)]

    def _cached(self) -> dict[str, str]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(ghl_custom_fields.c.field_key, ghl_custom_fields.c.field_id).where(
                    ghl_custom_fields.c.location_id == self.location_id
                )
            )
            return {r.field_key: r.field_id for r in rows}

    def _may_refresh(self) -> bool:
        with self.engine.connect() as conn:
            last = conn.execute(
                sa.select(sa.func.max(ghl_custom_fields.c.fetched_at)).where(
                    ghl_custom_fields.c.location_id == self.location_id
                )
            ).scalar()
        return last is None or self.clock.now() - float(last) >= REFRESH_AFTER

    async def _refresh(self, sender: Sender) -> dict[str, str]:
        answer = await sender.send(
            PlannedCall(
                "GET",
                f"/locations/{self.location_id}/customFields",
                params={"model": "contact"},
                purpose="custom-fields",
            )
        )
        fields = _definitions(answer)
        self._store(fields)
        return {key: fid for key, fid, _ in fields}

    def _store(self, fields: list[tuple[str, str, str | None]]) -> None:
        now = self.clock.now()
        table = ghl_custom_fields
        with self.engine.begin() as conn:
            conn.execute(sa.delete(table).where(table.c.location_id == self.location_id))
            rows = [
                {
                    "location_id": self.location_id,
                    "field_key": key,
                    "field_id": fid,
                    "data_type": dtype,
                    "fetched_at": now,
                }
                for key, fid, dtype in fields
            ]
            # An empty location still gets a marker row, so the refresh throttle holds.
            rows = rows or [
                {
                    "location_id": self.location_id,
                    "field_key": "",
                    "field_id": "",
                    "data_type": None,
                    "fetched_at": now,
                }
            ]
            conn.execute(sa.insert(table), rows)


def _norm(key: str) -> str:
    """Keys compare with the `contact.` prefix GHL puts on them, case-insensitively."""
    key = key.strip().lower()
    return key if key.startswith("contact.") else f"contact.{key}"


def _definitions(answer: Any) -> list[tuple[str, str, str | None]]:
    items = answer.get("customFields", []) if isinstance(answer, Mapping) else []
    out: list[tuple[str, str, str | None]] = []
    for item in items:
        key, fid = item.get("fieldKey"), item.get("id")
        if isinstance(key, str) and key and isinstance(fid, str) and fid:
            out.append((_norm(key), fid, item.get("dataType")))
    return out


def _field(field_id: str | None, key: str, value: Any) -> dict[str, Any]:
    if field_id is None:  # dry run only: GHL also accepts the key in place of the id
        return {"key": key, "field_value": value}
    return {"id": field_id, "field_value": value}
