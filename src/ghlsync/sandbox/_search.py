"""Contact search (`POST /contacts/search`) and the deprecated listing (`GET /contacts/`).

Both order contacts oldest first by `dateAdded`, ties broken by id, so cursors are stable.
The search index is immediate here; GHL documents it as eventually consistent.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ghlsync.sandbox._errors import unprocessable
from ghlsync.sandbox._models import SearchContacts
from ghlsync.sandbox._records import public
from ghlsync.sandbox._state import Location, Record

MAX_PAGE_LIMIT = 500


def millis(stamp: str) -> int:
    """Epoch milliseconds of a GHL timestamp."""
    return int(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() * 1000)


def _key(contact: Record, field: str = "dateAdded") -> tuple[Any, str]:
    value = contact.get(field)
    if field in ("dateAdded", "dateUpdated") and isinstance(value, str):
        value = millis(value)
    return (value if value is not None else "", contact["id"])


def search_view(contact: Record) -> Record:
    """A contact as search and listing results show it."""
    return public(contact)


def search(location: Location, body: SearchContacts) -> dict[str, Any]:
    """One page of matching contacts; each carries its own `searchAfter` cursor."""
    if not 1 <= body.pageLimit <= MAX_PAGE_LIMIT:
        raise unprocessable(f"pageLimit must not be greater than {MAX_PAGE_LIMIT}")
    field, reverse = _sort_of(body.sort)
    try:
        found = [c for c in _candidates(location, body) if _matches(c, body)]
        found.sort(key=lambda c: _key(c, field), reverse=reverse)
    except (TypeError, AttributeError, ValueError) as exc:
        # e.g. a range bound of another type than the field's values, or a malformed group
        raise unprocessable("filters and sort must match the types of the fields") from exc
    total = len(found)
    if body.searchAfter:
        page = _after(found, field, reverse, body.searchAfter)[: body.pageLimit]
    else:
        start = ((body.page or 1) - 1) * body.pageLimit
        page = found[start : start + body.pageLimit]
    contacts = [{**search_view(c), "searchAfter": list(_key(c, field))} for c in page]
    return {"contacts": contacts, "total": total}


def _candidates(location: Location, body: SearchContacts) -> list[Record]:
    """The contacts a search can match: for a lookup by email and/or phone (`eq`, alone or in
    one OR group, as first-time matching sends it) only those the duplicate index holds under
    those values, else all. The filters still decide; this only skips a scan of everyone."""
    keys = None if body.query else _lookup_keys(body.filters or [])
    if keys is None:
        return list(location.contacts.values())
    ids = dict.fromkeys(i for key in keys for i in location.contact_index.get(key, ()))
    return [location.contacts[i] for i in ids if i in location.contacts]


def _lookup_keys(filters: list[dict[str, Any]]) -> list[tuple[str, str]] | None:
    """(field, value) index keys when `filters` is one email/phone `eq` or an OR group of them."""
    if len(filters) != 1:
        return None
    spec = filters[0]
    leaves = spec.get("filters") if "filters" in spec else [spec]
    if not isinstance(leaves, list) or not leaves:
        return None
    if "filters" in spec and str(spec.get("group", "AND")).upper() != "OR" and len(leaves) > 1:
        return None
    keys = []
    for leaf in leaves:
        field, value = leaf.get("field"), leaf.get("value")
        if leaf.get("operator", "eq") != "eq" or field not in ("email", "phone"):
            return None
        if not isinstance(value, str) or "filters" in leaf:
            return None
        keys.append((str(field), value.strip().lower() if field == "email" else value))
    return keys


def _after(found: list[Record], field: str, reverse: bool, cursor: list[Any]) -> list[Record]:
    """The contacts past a `searchAfter` cursor (`[sort value, id]`)."""
    after = (cursor[0], str(cursor[-1]))
    try:
        return [c for c in found if (_key(c, field) < after if reverse else _key(c, field) > after)]
    except TypeError as exc:
        raise unprocessable("searchAfter does not match the sort order") from exc


def _sort_of(sort: list[dict[str, Any]] | None) -> tuple[str, bool]:
    if not sort:
        return "dateAdded", False
    first = sort[0]
    return str(first.get("field", "dateAdded")), str(
        first.get("direction", "asc")
    ).lower() == "desc"


def _matches(contact: Record, body: SearchContacts) -> bool:
    if body.query and not has_text(contact, body.query):
        return False
    return all(_filter(contact, f) for f in body.filters or [])


def has_text(contact: Record, text: str) -> bool:
    """Does the text occur in a contact's name, email, phone or company (case-insensitively)?"""
    needle = text.lower()
    fields = ("name", "email", "phone", "companyName", "firstName", "lastName")
    return any(needle in str(contact.get(f) or "").lower() for f in fields)


def _filter(contact: Record, spec: dict[str, Any]) -> bool:
    """One filter or group (`{"group": "AND"|"OR", "filters": [...]}`)."""
    if "filters" in spec:
        results = [_filter(contact, f) for f in spec["filters"]]
        return any(results) if str(spec.get("group", "AND")).upper() == "OR" else all(results)
    field, op, want = str(spec.get("field", "")), str(spec.get("operator", "eq")), spec.get("value")
    have = contact.get(field)
    if field in ("email", "tags") or isinstance(have, str):
        have, want = _fold(have), _fold(want)
    return _compare(op, have, want)


def _fold(value: Any) -> Any:
    if isinstance(value, str):
        return value.lower()
    if isinstance(value, list):
        return [_fold(v) for v in value]
    return value


def _compare(op: str, have: Any, want: Any) -> bool:
    if op == "exists":
        return have not in (None, "", [])
    if op == "not_exists":
        return have in (None, "", [])
    if op in ("eq", "not_eq"):
        hit = want in have if isinstance(have, list) else have == want
        return hit if op == "eq" else not hit
    if op in ("contains", "not_contains"):
        hit = str(want) in str(have or "") if not isinstance(have, list) else want in have
        return hit if op == "contains" else not hit
    if op == "range" and isinstance(want, dict):
        value = (
            millis(have) if isinstance(have, str) and have[:2].isdigit() and "T" in have else have
        )
        return _in_range(value, want)
    raise unprocessable(f"operator {op} is not supported")


def _in_range(value: Any, bounds: dict[str, Any]) -> bool:
    if value is None:
        return False
    checks = {
        "gt": lambda b: value > b,
        "gte": lambda b: value >= b,
        "lt": lambda b: value < b,
        "lte": lambda b: value <= b,
    }
    return all(checks[k](_bound(v)) for k, v in bounds.items() if k in checks)


def _bound(value: Any) -> Any:
    return millis(value) if isinstance(value, str) and "T" in value else value


def list_page(
    location: Location,
    start_after: float | None,
    start_after_id: str | None,
    query: str | None,
    limit: int,
) -> dict[str, Any]:
    """The deprecated `GET /contacts/` page with its `meta` cursor."""
    found = sorted(
        (c for c in location.contacts.values() if not query or has_text(c, query)), key=_key
    )
    if start_after is not None or start_after_id:
        cursor = (start_after or 0, start_after_id or "")
        found_after = [c for c in found if _key(c) > cursor]
    else:
        found_after = found
    page = found_after[:limit]
    more = len(found_after) > limit
    last = page[-1] if page and more else None
    meta: dict[str, Any] = {
        "total": len(found),
        "currentPage": 1 + (len(found) - len(found_after)) // limit,
    }
    if last is not None:
        next_ms, next_id = millis(last["dateAdded"]), last["id"]
        meta.update(
            startAfter=next_ms,
            startAfterId=next_id,
            nextPage=meta["currentPage"] + 1,
            nextPageUrl=(
                f"https://services.leadconnectorhq.com/contacts/?locationId={location.id}"
                f"&startAfter={next_ms}&startAfterId={next_id}&limit={limit}"
            ),
        )
    return {"contacts": [search_view(c) for c in page], "count": len(found), "meta": meta}
