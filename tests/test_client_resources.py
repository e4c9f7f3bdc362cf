"""Each resource method sends a spec-valid request and parses the documented answer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx2
import pytest

from ghlsync._secret import Secret
from ghlsync.ghl import _client as client_module
from ghlsync.ghl import _resources as r
from ghlsync.ghl._client import GHLClient
from ghlsync.ghl._models import (
    Ack,
    Appointment,
    Contact,
    CustomField,
    Note,
    Opportunity,
    OpportunityUpsert,
    Tag,
    Task,
    UpsertResult,
)
from ghlsync.ghl._operations import OPERATIONS
from tests._openapi import load_spec, request_errors, success_example

LOC = "ve9EPM428h8vShlRW1KT"
Call = Callable[[GHLClient], Awaitable[Any]]


class _Tokens:
    async def token(self, key: str) -> Secret:
        return Secret("pit-resources-token-0000")

    async def after_unauthorized(self, key: str, rejected: Secret) -> Secret | None:
        return None


TASK = {"title": "Call back", "dueDate": "2026-12-01T10:00:00Z", "completed": False}
APPT = {"calendarId": "cal1", "contactId": "c1", "startTime": "2026-12-01T10:00:00-05:00"}

OPP = {"pipelineId": "p1", "contactId": "c1", "name": "Deck", "status": "open"}
# The spec requires the follower fields on an upsert; "add nothing" is what the flow sends.
KEEP_FOLLOWERS = {"followers": [], "isRemoveAllFollowers": False, "followersActionType": "add"}
SEARCH = {
    "query": "deck", "limit": 20, "page": 1, "searchAfter": [],
    "additionalDetails": {"notes": False, "tasks": False, "calendarEvents": False,
                          "unReadConversations": False},
}  # fmt: skip
OPPORTUNITY_CASES: list[tuple[str, Call, type | None]] = [
    ("get-pipelines", lambda g: g.opportunities.pipelines(LOC), list),
    ("get-opportunity", lambda g: g.opportunities.get(LOC, "o1"), Opportunity),
    ("create-opportunity", lambda g: g.opportunities.create(LOC, OPP), Opportunity),
    ("update-opportunity", lambda g: g.opportunities.update(LOC, "o1", {"status": "won"}),
     Opportunity),
    ("Upsert-opportunity",
     lambda g: g.opportunities.upsert(LOC, {**OPP, **KEEP_FOLLOWERS}), OpportunityUpsert),
    ("update-opportunity-status", lambda g: g.opportunities.set_status(LOC, "o1", "won"), Ack),
    ("delete-opportunity", lambda g: g.opportunities.delete(LOC, "o1"), Ack),
    ("search-opportunity", lambda g: g.opportunities.search(LOC, contact_id="c1"), None),
    ("search-opportunities-advanced", lambda g: g.opportunities.search_advanced(LOC, SEARCH),
     None),
    ("get-lost-reason", lambda g: g.opportunities.lost_reasons(LOC), list),
    ("add-followers-opportunity", lambda g: g.opportunities.add_followers(LOC, "o1", ["u1"]),
     None),
    ("remove-followers-opportunity",
     lambda g: g.opportunities.remove_followers(LOC, "o1", ["u1"]), None),
    ("get-workflow", lambda g: g.workflows.list(LOC), list),
    ("get-campaigns", lambda g: g.campaigns.list(LOC), list),
    ("send-a-new-message",
     lambda g: g.conversations.send(LOC, {"type": "SMS", "contactId": "c1", "message": "Hi",
                                          "subType": {}, "status": "pending"}),
     dict),  # the spec requires subType and status (GHL's reference sends neither)
]  # fmt: skip

CASES: list[tuple[str, Call, type | None]] = [
    ("get-contact", lambda g: g.contacts.get(LOC, "c1"), Contact),
    ("create-contact", lambda g: g.contacts.create(LOC, {"email": "a@x.io"}), Contact),
    ("update-contact", lambda g: g.contacts.update(LOC, "c1", {"firstName": "A"}), Contact),
    ("delete-contact", lambda g: g.contacts.delete(LOC, "c1"), Ack),
    ("get-contacts", lambda g: g.contacts.list_page(LOC, limit=20), None),
    # The spec declares no answer schema for duplicate search: nothing found reads as None.
    ("get-duplicate-contact", lambda g: g.contacts.find_duplicate(LOC, email="a@x.io"), None),
    ("upsert-contact", lambda g: g.contacts.upsert(LOC, {"email": "a@x.io"}), UpsertResult),
    ("get-contacts-by-businessId", lambda g: g.contacts.by_business(LOC, "b1"), None),
    ("add-tags", lambda g: g.contacts.add_tags(LOC, "c1", ["vip"]), list),
    ("remove-tags", lambda g: g.contacts.remove_tags(LOC, "c1", ["vip"]), list),
    ("get-appointments-for-contact", lambda g: g.contacts.appointments(LOC, "c1"), list),
    ("add-followers-contact", lambda g: g.contacts.add_followers(LOC, "c1", ["u1"]), None),
    ("remove-followers-contact", lambda g: g.contacts.remove_followers(LOC, "c1", ["u1"]), None),
    ("add-contact-to-campaign", lambda g: g.contacts.add_to_campaign(LOC, "c1", "k1"), Ack),
    (
        "remove-contact-from-campaign",
        lambda g: g.contacts.remove_from_campaign(LOC, "c1", "k1"),
        Ack,
    ),
    (
        "remove-contact-from-every-campaign",
        lambda g: g.contacts.remove_from_all_campaigns(LOC, "c1"),
        Ack,
    ),
    ("add-contact-to-workflow", lambda g: g.contacts.add_to_workflow(LOC, "c1", "w1"), Ack),
    (
        "delete-contact-from-workflow",
        lambda g: g.contacts.remove_from_workflow(LOC, "c1", "w1"),
        Ack,
    ),
    ("create-association", lambda g: g.contacts.bulk_tags(LOC, "add", ["c1"], ["vip"]), None),
    (
        "add-remove-contact-from-business",
        lambda g: g.contacts.bulk_business(LOC, ["c1"], "b1"),
        None,
    ),
    ("get-all-tasks", lambda g: g.tasks.list(LOC, "c1"), list),
    ("get-task", lambda g: g.tasks.get(LOC, "c1", "t1"), Task),
    ("create-task", lambda g: g.tasks.create(LOC, "c1", TASK), Task),
    ("update-task", lambda g: g.tasks.update(LOC, "c1", "t1", {"title": "x"}), Task),
    ("update-task-completed", lambda g: g.tasks.complete(LOC, "c1", "t1"), Task),
    ("delete-task", lambda g: g.tasks.delete(LOC, "c1", "t1"), Ack),
    ("task-search", lambda g: g.tasks.search(LOC, {"completed": False}), None),
    ("get-all-notes", lambda g: g.notes.list(LOC, "c1"), list),
    ("get-note", lambda g: g.notes.get(LOC, "c1", "n1"), Note),
    ("create-note", lambda g: g.notes.create(LOC, "c1", {"body": "hi"}), Note),
    ("update-note", lambda g: g.notes.update(LOC, "c1", "n1", {"body": "hi"}), Note),
    ("delete-note", lambda g: g.notes.delete(LOC, "c1", "n1"), Ack),
    ("get-calendars", lambda g: g.calendars.list(LOC), list),
    ("create-appointment", lambda g: g.calendars.create_appointment(LOC, APPT), Appointment),
    ("get-appointment", lambda g: g.calendars.get_appointment(LOC, "e1"), Appointment),
    (
        "edit-appointment",
        lambda g: g.calendars.update_appointment(LOC, "e1", {"title": "x"}),
        Appointment,
    ),
    ("delete-event", lambda g: g.calendars.delete_event(LOC, "e1"), Ack),
    (
        "get-calendar-events",
        lambda g: g.calendars.events(LOC, start_time=1, end_time=2, calendar_id="cal1"),
        list,
    ),
    (
        "get-slots",
        lambda g: g.calendars.free_slots(LOC, "cal1", start_date=1, end_date=2),
        None,
    ),
    ("get-appointment-notes", lambda g: g.calendars.appointment_notes(LOC, "e1"), None),
    (
        "create-appointment-note",
        lambda g: g.calendars.create_appointment_note(LOC, "e1", {"body": "hi"}),
        None,
    ),
    (
        "update-appointment-note",
        lambda g: g.calendars.update_appointment_note(LOC, "e1", "n1", {"body": "hi"}),
        None,
    ),
    (
        "delete-appointment-note",
        lambda g: g.calendars.delete_appointment_note(LOC, "e1", "n1"),
        Ack,
    ),
    ("get-location", lambda g: g.locations.get(LOC), None),
    ("get-custom-fields", lambda g: g.locations.custom_fields(LOC, model="contact"), list),
    ("get-custom-field", lambda g: g.locations.get_custom_field(LOC, "f1"), CustomField),
    (
        "create-custom-field",
        lambda g: g.locations.create_custom_field(LOC, {"name": "Job", "dataType": "TEXT"}),
        CustomField,
    ),
    ("get-location-tags", lambda g: g.locations.tags(LOC), list),
    ("create-tag", lambda g: g.locations.create_tag(LOC, "vip"), Tag),
    ("get-user-by-location", lambda g: g.users.list(LOC), list),
    ("get-user", lambda g: g.users.get(LOC, "u1"), None),
    ("get-businesses-by-location", lambda g: g.businesses.list(LOC), list),
    ("get-business", lambda g: g.businesses.get(LOC, "b1"), None),
    ("create-business", lambda g: g.businesses.create(LOC, {"name": "Acme"}), None),
    ("update-business", lambda g: g.businesses.update(LOC, "b1", {"name": "Acme"}), None),
    ("delete-Business", lambda g: g.businesses.delete(LOC, "b1"), Ack),
    *OPPORTUNITY_CASES,
]


@pytest.mark.parametrize(("operation_id", "invoke", "returns"), CASES, ids=[c[0] for c in CASES])
async def test_resource_method(
    ghl_spec_dir: Path, operation_id: str, invoke: Call, returns: type | None
) -> None:
    op = OPERATIONS[operation_id]
    seen: list[httpx2.Request] = []

    def handle(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return success_example(ghl_spec_dir, op.family, op.method, op.path)

    transport = httpx2.MockTransport(handle)
    async with GHLClient(base_url="http://x.test", tokens=_Tokens(), transport=transport) as ghl:
        result = await invoke(ghl)
    assert [(r.method, r.headers["version"]) for r in seen] == [(op.method, op.version)]
    assert request_errors(load_spec(ghl_spec_dir, op.family), seen[0]) == []
    if returns is not None:
        assert isinstance(result, returns)


def test_every_resource_method_is_in_the_table() -> None:
    covered = {case[0] for case in CASES} | {"search-contacts-advanced"}
    assert covered == set(OPERATIONS)


def test_client_docstring_lists_every_resource_method() -> None:
    doc = client_module.__doc__ or ""
    groups = {
        "contacts": r.Contacts,
        "tasks": r.Tasks,
        "notes": r.Notes,
        "calendars": r.Calendars,
        "locations": r.Locations,
        "users": r.Users,
        "businesses": r.Businesses,
        "opportunities": r.Opportunities,
        "workflows": r.Workflows,
        "campaigns": r.Campaigns,
        "conversations": r.Conversations,
    }
    sections: dict[str, list[str]] = {}
    current: list[str] = []
    for line in doc.splitlines():
        if line and not line.startswith(" "):
            current = sections.setdefault(line.split(" ")[0], [])
        elif line.startswith("    ") and "(" in line:
            current.append(line.strip().split("(")[0])
    for group, cls in groups.items():
        public = {n for n in vars(cls) if not n.startswith("_")}
        assert set(sections[group]) == public, group
