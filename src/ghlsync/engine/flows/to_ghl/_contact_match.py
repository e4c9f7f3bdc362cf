"""First-time matching on live events: a customer matching two GHL contacts is parked.

A customer the store has never mapped may already be in GHL, perhaps as two contacts (one
holds the email, another the phone, or the location allows duplicates). Writing to either
would guess; the event is dead-lettered instead, naming both contact ids, and replayed once
someone merged or fixed them in GHL (`ghlsync dlq replay`).

What it costs, by the location's duplicate rule (`_duplicate_rule`):
- duplicates refused: nothing on the usual path. Only when GHL refuses the create because
  the person exists (it names them and the field that matched) and the customer has the
  other field too, one `GET /contacts/search/duplicate` by that field checks for a second
  person.
- duplicates allowed: the upsert would merge into whichever duplicate GHL's rule picks, so
  one `POST /contacts/search` (email OR phone) goes first; exactly one contact found is
  linked and updated, none is upserted as before.
- the rule unreadable (a token without `locations.readonly`): the upsert runs as before and
  GHL's rule picks (email first); nothing can tell an ambiguous customer apart for free.
A dry run (preview) sends no searches.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ghlsync.engine.flows.to_ghl._model import Run
from ghlsync.engine.flows.to_ghl._plan import PlannedCall
from ghlsync.engine.flows.to_ghl._records import records
from ghlsync.ghl._errors import FatalError

__all__ = ["AmbiguousContactError", "other_person", "search_first"]

_SEARCH_PARAMS = {"email": "email", "phone": "number"}


class AmbiguousContactError(FatalError):
    """The customer matches several GHL contacts: parked in the dead-letter queue, not guessed."""

    def __init__(self, source_id: str, found: Mapping[str, str]) -> None:
        self.ghl_ids = tuple(dict.fromkeys(found.values()))
        by = ", ".join(f"{ghl_id} (by {field})" for field, ghl_id in found.items())
        super().__init__(
            f"customer {source_id!r} matches {len(self.ghl_ids)} GHL contacts: {by}; "
            "parked, not guessed: merge or fix them in GHL, then replay this dead letter"
        )


async def search_first(
    run: Run, source_id: str, body: Mapping[str, Any]
) -> Mapping[str, Any] | None:
    """Before an upsert: the one GHL contact with this email or phone, None when there is
    none (or in a dry run); `AmbiguousContactError` when there are several."""
    filters = [
        {"field": field, "operator": "eq", "value": str(body[field])}
        for field in ("email", "phone")
        if body.get(field)
    ]
    if not filters or not run.sender.live:
        return None
    search = {
        "locationId": run.location_id,
        "pageLimit": 10,
        "filters": [{"group": "OR", "filters": filters}],
    }
    answer = await run.sender.send(
        PlannedCall("POST", "/contacts/search", body=search, purpose="lookup", idempotent=True)
    )
    found = [r for r in records(answer, "contacts") if r.get("id")]
    if len(found) <= 1:
        return found[0] if found else None
    raise AmbiguousContactError(source_id, _by_field(found, body))


async def other_person(
    run: Run, source_id: str, body: Mapping[str, Any], person: str, matched: str | None
) -> None:
    """After GHL refused a create naming `person` (matched by `matched`): raise
    `AmbiguousContactError` when the customer's other field belongs to someone else."""
    fields = [f for f in ("email", "phone") if body.get(f) and f != matched]
    for field in fields:
        answer = await run.sender.send(
            PlannedCall(
                "GET",
                "/contacts/search/duplicate",
                params={"locationId": run.location_id, _SEARCH_PARAMS[field]: str(body[field])},
                purpose="lookup",
            )
        )
        other = [str(r["id"]) for r in records(answer, "contact", "contacts") if r.get("id")]
        if other and other[0] != person:
            raise AmbiguousContactError(
                source_id, {matched or "GHL's rule": person, field: other[0]}
            )


def _by_field(found: list[Mapping[str, Any]], body: Mapping[str, Any]) -> dict[str, str]:
    """Each found contact labelled by what it matched on (email first, as GHL's rule)."""
    email = str(body.get("email") or "").lower()
    out: dict[str, str] = {}
    for n, record in enumerate(found, start=1):
        label = "email" if email and str(record.get("email") or "").lower() == email else "phone"
        out[label if label not in out else f"{label} #{n}"] = str(record["id"])
    return out
