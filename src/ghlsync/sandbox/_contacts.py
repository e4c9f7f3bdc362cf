"""Contacts: creation, duplicate rules, upsert, updates and tags, as GHL's docs describe them.

Duplicate rule: a location either allows duplicate contacts or not (`allow_duplicate_contact`,
default False) and has a match priority (`duplicate_priority`, default email then phone).
Emails match case-insensitively; phones match on their E.164 form.
"""

from __future__ import annotations

import re
from typing import Any

import phonenumbers

from ghlsync.sandbox._errors import SandboxError, unprocessable
from ghlsync.sandbox._records import emit, now_iso, public
from ghlsync.sandbox._state import Location, Record, SandboxState

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
DUPLICATE_MESSAGE = "This location does not allow duplicated contacts."


def normalise_phone(raw: str, region: str = "US") -> str:
    """E.164 form of a phone number, read with US as the default region."""
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException as exc:
        raise unprocessable("phone must be a valid phone number") from exc
    if not phonenumbers.is_possible_number(number):
        raise unprocessable("phone must be a valid phone number")
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


def phone_key(raw: str) -> str | None:
    """The E.164 form duplicate lookups use, or None when `raw` is no possible number."""
    try:
        return normalise_phone(raw)
    except SandboxError:
        return None


def _clean(fields: dict[str, Any]) -> dict[str, Any]:
    """Validate and normalise the email and phone a caller sent."""
    out = dict(fields)
    email = out.get("email")
    if email:
        if not _EMAIL.match(email):
            raise unprocessable("email must be an email")
        out["email"] = email.strip()
    phone = out.get("phone")
    if phone:
        out["phone"] = normalise_phone(phone)
    return out


def find_duplicate(
    location: Location,
    email: str | None,
    phone: str | None,
    priority: tuple[str, ...] | None = None,
) -> tuple[Record, str] | None:
    """The contact that counts as a duplicate, by the location's priority, and the field matched."""
    wanted = {"email": (email or "").strip().lower() or None, "phone": phone or None}
    for field in priority or location.duplicate_priority:
        value = wanted.get(field)
        ids = location.contact_index.get((field, value)) if value else None
        if ids:
            return location.contacts[ids[0]], field
    return None


def _index_keys(contact: Record) -> list[tuple[str, str]]:
    keys = [("email", contact.get("emailLowerCase")), ("phone", contact.get("phone"))]
    return [(field, value) for field, value in keys if value]


def _unindex(location: Location, contact: Record) -> None:
    for key in _index_keys(contact):
        ids = location.contact_index.get(key, [])
        if contact["id"] in ids:
            ids.remove(contact["id"])
        if not ids:
            location.contact_index.pop(key, None)


def _index(location: Location, contact: Record) -> None:
    for key in _index_keys(contact):
        location.contact_index.setdefault(key, []).append(contact["id"])


def _apply(
    state: SandboxState, location: Location, contact: Record, fields: dict[str, Any]
) -> None:
    """Write given fields onto a contact, keeping GHL's derived fields in step."""
    _unindex(location, contact)
    custom = fields.pop("customFields", None)
    for key, value in fields.items():
        contact[key] = value
    if "email" in fields:
        contact["emailLowerCase"] = (fields["email"] or "").lower() or None
    if "tags" in fields:
        contact["tags"] = _unique(fields["tags"] or [])
    if custom is not None:
        contact["customFields"] = _merge_custom(location, contact.get("customFields", []), custom)
    _derive_names(contact)
    contact["dateUpdated"] = now_iso(state)
    _index(location, contact)


def _derive_names(contact: Record) -> None:
    first, last = contact.get("firstName"), contact.get("lastName")
    full = " ".join(part for part in (first, last) if part) or contact.get("name")
    contact["firstNameLowerCase"] = first.lower() if first else None
    contact["lastNameLowerCase"] = last.lower() if last else None
    contact["fullNameLowerCase"] = full.lower() if full else None
    contact["name"] = full


def _merge_custom(location: Location, current: list[Record], given: list[Record]) -> list[Record]:
    """Merge custom field values by id; a `key` resolves through the location's `fieldKey`s.

    Items naming no custom field of the location are ignored, as GHL does, so a stored contact
    only ever refers to fields that exist.
    """
    values = {item["id"]: item["value"] for item in current}
    by_key = {f.get("fieldKey"): f["id"] for f in location.custom_fields.values()}
    for item in given:
        field_id = item.get("id")
        if field_id not in location.custom_fields:
            key = item.get("key")
            field_id = by_key.get(key) or by_key.get(f"contact.{key}")
        if field_id:
            values[str(field_id)] = item.get("field_value")
    return [{"id": k, "value": v} for k, v in values.items() if v is not None]


def _unique(tags: list[str]) -> list[str]:
    return list(dict.fromkeys(tag.strip() for tag in tags if tag.strip()))


def create(
    state: SandboxState, location: Location, fields: dict[str, Any], *, check: bool = True
) -> Record:
    """A new contact; 400 with `meta.contactId` when the location forbids the duplicate."""
    fields = _clean(fields)
    fields.pop("locationId", None)
    if check and not location.allow_duplicate_contact:
        match = find_duplicate(location, fields.get("email"), fields.get("phone"))
        if match is not None:
            meta = {
                "contactName": match[0].get("name"),
                "contactId": match[0]["id"],
                "matchingField": match[1],
            }
            raise SandboxError(400, DUPLICATE_MESSAGE, meta=public(meta))
    now = now_iso(state)
    contact: Record = {
        "id": state.new_id(),
        "locationId": location.id,
        "type": "lead",
        "dnd": False,
        "tags": [],
        "customFields": [],
        "dateAdded": now,
        "deleted": False,
    }
    _apply(state, location, contact, fields)
    location.contacts[contact["id"]] = contact
    emit(state, location, "ContactCreate", webhook_view(contact))
    return contact


def update(
    state: SandboxState, location: Location, contact: Record, fields: dict[str, Any]
) -> Record:
    """Change a contact; `tags` (when given) replace all tags.

    Events follow what changed: ContactUpdate for fields, ContactTagUpdate for tags, none for
    a write that changes nothing.
    """
    fields = _clean(fields)
    before = _comparable(contact)
    _apply(state, location, contact, fields)
    after = _comparable(contact)
    if before.pop("tags", []) != after.pop("tags", []):
        emit(state, location, "ContactTagUpdate", webhook_view(contact))
    if before != after:
        emit(state, location, "ContactUpdate", webhook_view(contact))
    return contact


def _comparable(contact: Record) -> Record:
    return {k: v for k, v in public(contact).items() if k != "dateUpdated"}


def upsert(state: SandboxState, location: Location, fields: dict[str, Any]) -> tuple[Record, bool]:
    """Update the contact matched by the location's duplicate rule, or create one."""
    fields = _clean(fields)
    force_new = bool(fields.pop("createNewIfDuplicateAllowed", False))
    fields.pop("locationId", None)
    if force_new and location.allow_duplicate_contact:
        return create(state, location, fields, check=False), True
    match = find_duplicate(location, fields.get("email"), fields.get("phone"))
    if match is None:
        return create(state, location, fields, check=False), True
    contact, matched = match
    other = "phone" if matched == "email" else "email"
    clash = find_duplicate(location, fields.get("email"), fields.get("phone"), (other,))
    if clash is not None and clash[0]["id"] != contact["id"]:
        fields.pop(other, None)  # GHL keeps the first match and ignores the second field
    return update(state, location, contact, fields), False


def add_tags(
    state: SandboxState, location: Location, contact: Record, tags: list[str]
) -> list[str]:
    """Add tags (a delta), keeping the existing ones."""
    before = list(contact.get("tags", []))
    contact["tags"] = _unique([*before, *tags])
    _tags_changed(state, location, contact, before)
    return list(contact["tags"])


def remove_tags(
    state: SandboxState, location: Location, contact: Record, tags: list[str]
) -> list[str]:
    """Remove tags (a delta); tags not on the contact are ignored."""
    before = list(contact.get("tags", []))
    drop = {t.strip() for t in tags}
    contact["tags"] = [t for t in before if t not in drop]
    _tags_changed(state, location, contact, before)
    return list(contact["tags"])


def _tags_changed(
    state: SandboxState, location: Location, contact: Record, before: list[str]
) -> None:
    if contact["tags"] != before:
        contact["dateUpdated"] = now_iso(state)
        emit(state, location, "ContactTagUpdate", webhook_view(contact))


def delete(state: SandboxState, location: Location, contact: Record) -> None:
    """Delete a contact with its tasks, notes and appointments."""
    cid = contact["id"]
    _unindex(location, contact)
    del location.contacts[cid]
    for table in (location.tasks, location.notes, location.appointments):
        for rid in [rid for rid, rec in table.items() if rec.get("contactId") == cid]:
            del table[rid]
    emit(state, location, "ContactDelete", webhook_view(contact))


_WEBHOOK_FIELDS = (
    "id",
    "address1",
    "city",
    "companyName",
    "country",
    "source",
    "dateAdded",
    "dateOfBirth",
    "dnd",
    "email",
    "name",
    "firstName",
    "lastName",
    "phone",
    "postalCode",
    "state",
    "tags",
    "website",
    "assignedTo",
    "customFields",
)


def webhook_view(contact: Record) -> Record:
    """The flat contact fields GHL's contact webhook events carry."""
    view = {k: contact.get(k) for k in _WEBHOOK_FIELDS}
    view["attachments"] = []
    return public(view)
