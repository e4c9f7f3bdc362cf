"""API v3 shapes, translated at the client seam so everything above it sees one shape.

Requests are built from the v2 models (`_models`), then reshaped for v3; v3 answers are
reshaped back before the resources parse them. What differs for the operations ghlsync uses
(details and spec references in docs/api-versions.md):

- contact bodies (`CreateContactDtoV3`, `UpdateContactDtoV3`, `UpsertContactDtoV3`): the
  `dndSettings` channels are camelCase (`call`, `email`, `sms`, `whatsApp`, `gmb`, `fb`; v2:
  `Call`, `Email`, `SMS`, ...) and a custom field value is `fieldValue` (`field_value` is
  deprecated);
- contact answers (`GetContactByIdSchemaV3`): the same camelCase `dndSettings`;
- deletes and updates answer `succeeded` (v2 spelled it `succeded`; `Ack` takes both).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["answer_from_v3", "body_to_v3"]

_DND_TO_V3 = {
    "Call": "call",
    "Email": "email",
    "SMS": "sms",
    "WhatsApp": "whatsApp",
    "GMB": "gmb",
    "FB": "fb",
}
_DND_FROM_V3 = {v3: v2 for v2, v3 in _DND_TO_V3.items()}
_CONTACT_BODIES = frozenset({"create-contact", "update-contact", "upsert-contact"})


def body_to_v3(operation_id: str, body: Any) -> Any:
    """The v3 request body for `operation_id`, given the v2-shaped JSON its model dumped."""
    if operation_id not in _CONTACT_BODIES or not isinstance(body, Mapping):
        return body
    out = dict(body)
    if isinstance(out.get("dndSettings"), Mapping):
        out["dndSettings"] = _rename(out["dndSettings"], _DND_TO_V3)
    if isinstance(out.get("customFields"), list):
        out["customFields"] = [_field_value_to_v3(item) for item in out["customFields"]]
    return out


def answer_from_v3(answer: Any) -> Any:
    """A v3 answer with contacts reshaped as v2 returns them (other fields as they came)."""
    if not isinstance(answer, Mapping):
        return answer
    out = dict(answer)
    if isinstance(out.get("contact"), Mapping):
        out["contact"] = _contact_from_v3(out["contact"])
    if isinstance(out.get("contacts"), list):
        out["contacts"] = [_contact_from_v3(item) for item in out["contacts"]]
    return out


def _contact_from_v3(contact: Any) -> Any:
    if not isinstance(contact, Mapping) or not isinstance(contact.get("dndSettings"), Mapping):
        return contact
    return {**contact, "dndSettings": _rename(contact["dndSettings"], _DND_FROM_V3)}


def _field_value_to_v3(item: Any) -> Any:
    if not isinstance(item, Mapping) or "field_value" not in item:
        return item
    out = {k: v for k, v in item.items() if k != "field_value"}
    out.setdefault("fieldValue", item["field_value"])
    return out


def _rename(channels: Mapping[str, Any], names: Mapping[str, str]) -> dict[str, Any]:
    return {names.get(key, key): value for key, value in channels.items()}
