"""`--kind leads` and `--kind jobs`: a DripJobs leads export (Sales List columns) and a jobs
export (Jobs List columns, no customer id) through the backfill against the sandbox over
loopback HTTP → the GHL end state those events give: contacts, the preset's tags, and for jobs
the customer's card in the project pipeline (SQLite and PostgreSQL)."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ghlsync.backfill import BackfillPlan
from ghlsync.engine import list_dead_letters
from ghlsync.engine.flows.to_ghl._pipelines import forget_pipelines
from ghlsync.mapping._opportunity_settings import OpportunitySettings
from ghlsync.sandbox import SandboxServer
from ghlsync.store import create_engine, migrate
from tests._robust_kit import duplicate_records
from tests.test_backfill_e2e import _config, _contacts, _Run, _state_json


@pytest.fixture
def fast_sandbox() -> Iterator[SandboxServer]:
    server = SandboxServer(burst=2000, interval_ms=1000).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def _fresh_pipelines() -> Iterator[None]:
    forget_pipelines()
    yield
    forget_pipelines()


def _write(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _add_contact(sandbox: SandboxServer, **fields: Any) -> str:
    from ghlsync.sandbox._contacts import create

    state = sandbox.state
    with state.lock:
        contact = create(state, state.location(sandbox.location_id), fields)
    return str(contact["id"])


def _by_email(sandbox: SandboxServer) -> dict[str, dict[str, Any]]:
    return {str(c.get("email")): c for c in _contacts(sandbox) if c.get("email")}


def _tags(contact: dict[str, Any]) -> set[str]:
    return {str(t).lower() for t in contact.get("tags") or []}


async def _backfill(url: str, sandbox: SandboxServer, path: Path, kind: str, **update: Any) -> Any:
    engine = create_engine(url)
    migrate(engine)
    config = _config(sandbox, url, window=8, batch=4)
    if update:
        config = config.model_copy(update=update)
    run = _Run(engine, config)
    try:
        summary = await run.backfill(BackfillPlan(path, kind, sandbox.location_id))
    finally:
        await run.close()
    letters = [d.reason for d in list_dead_letters(engine)]
    engine.dispose()
    return summary, letters


# The Sales List view's columns (docs/backfill.md, "Column names").
LEADS_HEADER = [
    "dripjobsContactId", "customerName", "email", "phone", "source", "dealStage",
    "lastChange", "dealId",
]  # fmt: skip


async def test_leads_export_creates_tagged_leads_and_links_existing_contacts(
    database_url: str, fast_sandbox: SandboxServer, tmp_path: Path
) -> None:
    path = _write(
        tmp_path / "leads.csv",
        LEADS_HEADER,
        [
            ["L1", "Ann Lee", "ann@example.com", "(512) 201-1001", "Google",
             "Estimate Scheduled", "2026-11-01T10:00:00Z", "D1"],
            ["L2", "Bob Ray", "bob@example.com", "", "Facebook",
             "Appointment Request", "2026-11-02T10:00:00Z", "D2"],
            ["L3", "Cy Old", "cy@example.com", "(512) 201-1003", "Referral",
             "Proposal Sent", "2026-11-03T10:00:00Z", "D3"],
            ["L4", "Dee Phone", "", "(512) 201-1004", "Yard Sign", "", "", ""],
            ["L5", "No Way To Reach", "", "", "Google", "", "", ""],
        ],
    )  # fmt: skip
    # Cy was in GHL before, with a tag of the contractor's own.
    cy = _add_contact(fast_sandbox, email="cy@example.com", firstName="Cyrus", tags=["vip"])

    summary, letters = await _backfill(database_url, fast_sandbox, path, "leads")

    assert summary.kind == "leads" and not summary.interrupted
    assert (summary.counts["created"], summary.counts["linked"]) == (3, 1)
    assert summary.counts["rejected"] == 1
    assert len(letters) == 1 and "leads.csv row 6:" in letters[0]
    contacts = _contacts(fast_sandbox)
    assert len(contacts) == 4  # three new leads and Cy, never a second Cy
    assert duplicate_records(_state_json(fast_sandbox), fast_sandbox.location_id) == []
    by_email = _by_email(fast_sandbox)
    ann, bob = by_email["ann@example.com"], by_email["bob@example.com"]
    assert (ann["firstName"], ann["lastName"], ann["phone"]) == ("Ann", "Lee", "+15122011001")
    assert ann["source"] == "Google"
    assert _tags(ann) == {"lead", "source:google", "deal:estimate scheduled"}
    assert _tags(bob) == {"lead", "source:facebook", "deal:appointment request"}
    # The existing contact: linked and updated, its own tag kept beside the lead's.
    assert by_email["cy@example.com"]["id"] == cy
    assert by_email["cy@example.com"]["firstName"] == "Cy"
    assert _tags(by_email["cy@example.com"]) == {
        "vip", "lead", "source:referral", "deal:proposal sent",
    }  # fmt: skip
    [dee] = [c for c in contacts if c.get("phone") == "+15122011004"]
    assert _tags(dee) == {"lead", "source:yard sign"}


# The Jobs List's columns ("Customer Name", "Deal Stage", "Lead Source", "Job Address",
# "Changed Date"); "Job Stage" is the preset's guessed name for the project stage. No customer
# id: rows are keyed by email, else phone digits.
JOBS_HEADER = [
    "Customer Name", "Email", "Phone", "Job Address", "City", "Deal Stage", "Job Stage",
    "Lead Source", "Changed Date",
]  # fmt: skip
PRODUCTION = OpportunitySettings(
    project_pipeline="Production",
    project_stages={
        "Job Scheduled": "Scheduled",
        "Job In Progress": "In progress",
        "Complete": "Completed",
    },
)


async def test_jobs_export_tags_stages_and_puts_cards_in_the_project_pipeline(
    database_url: str, fast_sandbox: SandboxServer, tmp_path: Path
) -> None:
    path = _write(
        tmp_path / "jobs.csv",
        JOBS_HEADER,
        [  # newest change first, as a list sorted by "Changed Date" shows it
            ["Ann Lee", "ann@example.com", "(512) 201-1001", "12 Oak St", "Austin",
             "Proposal Approved", "Complete", "Google", "2026-11-20T15:00:00Z"],
            ["Bob Ray", "bob@example.com", "(512) 201-1002", "3 Elm Rd", "Round Rock",
             "Proposal Approved", "Job In Progress", "Facebook", "2026-11-18T15:00:00Z"],
            ["Dee Phone", "", "(512) 201-1004", "9 Pine Ln", "Austin",
             "Proposal Approved", "Job Scheduled", "Referral", "2026-11-10T15:00:00Z"],
            ["Nobody", "", "", "1 Nowhere", "Austin",
             "Proposal Approved", "Job Scheduled", "Google", "2026-11-09T15:00:00Z"],
            # Ann's older change, further down the file: it must not undo the newer one.
            ["Ann Lee", "ann@example.com", "(512) 201-1001", "12 Oak St", "Austin",
             "Proposal Approved", "Job Scheduled", "Google", "2026-11-02T15:00:00Z"],
        ],
    )  # fmt: skip

    summary, letters = await _backfill(
        database_url, fast_sandbox, path, "jobs", opportunities=PRODUCTION
    )

    assert summary.kind == "jobs" and not summary.interrupted
    assert summary.counts["created"] == 3 and summary.counts["rejected"] == 1
    assert len(letters) == 1 and "jobs.csv row 5:" in letters[0], letters
    contacts = _contacts(fast_sandbox)
    assert len(contacts) == 3
    assert duplicate_records(_state_json(fast_sandbox), fast_sandbox.location_id) == []
    by_email = _by_email(fast_sandbox)
    ann, bob = by_email["ann@example.com"], by_email["bob@example.com"]
    [dee] = [c for c in contacts if c.get("phone") == "+15122011004"]
    assert (ann["firstName"], ann["lastName"], ann["address1"], ann["city"]) == (
        "Ann", "Lee", "12 Oak St", "Austin",
    )  # fmt: skip
    assert _tags(ann) == {"source:google", "deal:proposal approved", "project:complete"}
    assert _tags(bob) == {"source:facebook", "deal:proposal approved", "project:job in progress"}
    assert _tags(dee) == {"source:referral", "deal:proposal approved", "project:job scheduled"}

    # One card per customer in Production, at the mapped stage of the newest change.
    location = fast_sandbox.state.location(fast_sandbox.location_id)
    assert location is not None
    [production] = [p for p in location.pipelines.values() if p["name"] == "Production"]
    stages = {s["id"]: s["name"] for s in production["stages"]}
    cards = list(location.opportunities.values())
    assert all(card["pipelineId"] == production["id"] for card in cards)
    by_contact = {card["contactId"]: card for card in cards}
    assert len(cards) == len(by_contact) == 3
    assert stages[by_contact[ann["id"]]["pipelineStageId"]] == "Completed"
    assert stages[by_contact[bob["id"]]["pipelineStageId"]] == "In progress"
    assert stages[by_contact[dee["id"]]["pipelineStageId"]] == "Scheduled"
    assert by_contact[ann["id"]]["name"] == "Ann Lee"
