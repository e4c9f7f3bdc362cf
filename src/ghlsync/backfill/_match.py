"""First-time matching: is this DripJobs customer already a contact in GHL?

A location that has been in use holds people a DripJobs customer may already be. Before a
customer GHL has never seen from us is queued, one `POST /contacts/search` (email OR E.164
phone, through the client and so within the rate budget) tells whether it is new, exactly one
existing contact (linked, never created again), or several (ambiguous: parked, never
guessed). GHL's search index is eventually consistent; a contact created seconds earlier may
be missed, and is then caught by GHL's own duplicate rule when the create is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["Match", "match_contact"]

MatchKind = Literal["new", "matched", "ambiguous"]


@dataclass(frozen=True, slots=True)
class Match:
    """The outcome for one customer: `ghl_ids` of the contacts found (by email, then phone)."""

    kind: MatchKind
    ghl_ids: tuple[str, ...] = ()
    calls: int = 0

    @property
    def ghl_id(self) -> str | None:
        """The one contact a `matched` customer links to."""
        return self.ghl_ids[0] if self.kind == "matched" else None


async def match_contact(
    client: Any, location_id: str, email: str | None, phone: str | None
) -> Match:
    """Search GHL for contacts with this email or phone; one call (none without either)."""
    filters = [
        {"field": field, "operator": "eq", "value": value}
        for field, value in (("email", email), ("phone", phone))
        if value
    ]
    if not filters:
        return Match("new")
    body = {"pageLimit": 10, "filters": [{"group": "OR", "filters": filters}]}
    page = await client.contacts.search_page(location_id, body)
    found = _ordered(page.contacts, email, phone)
    if not found:
        return Match("new", calls=1)
    return Match("matched" if len(found) == 1 else "ambiguous", tuple(found), calls=1)


def _ordered(contacts: list[dict[str, Any]], email: str | None, phone: str | None) -> list[str]:
    """Distinct ids, the email matches first (email wins over phone, as GHL's rule does)."""
    by_email = [c for c in contacts if email and str(c.get("email") or "").lower() == email]
    rest = [c for c in contacts if c not in by_email]
    ids: list[str] = []
    for contact in [*by_email, *rest]:
        ghl_id = str(contact.get("id") or "")
        if ghl_id and ghl_id not in ids:
            ids.append(ghl_id)
    return ids
