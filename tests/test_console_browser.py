"""The console in a real browser (chromium via playwright) against a real app on loopback:
sign in, a location's status, secret rotation, dead-letter replay, the mapping tester and
record search, as the office manager would click through them."""

from __future__ import annotations

import json
from typing import Any

import httpx2
import sqlalchemy as sa

from ghlsync.engine import list_dead_letters
from tests._console_kit import (
    CUSTOMER_EMAIL,
    LOCATION,
    PASSWORD,
    TESTER_LEAD,
    TESTER_RECIPES,
    ConsoleSite,
    console_config,
    start,
)


def _sign_in(page: Any, site: ConsoleSite) -> None:
    page.goto(f"{site.console}/")
    assert page.url.endswith("/console/login")  # sent to the sign-in form first
    page.get_by_label("Admin password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Overview").wait_for()


def _hook(site: ConsoleSite, secret: str) -> int:
    answer = httpx2.post(
        f"{site.url}/hooks/dripjobs/{site.connection_id}/customer.updated",
        content=json.dumps({"customer_id": "cust-ava", "first_name": "Ava"}),
        headers={"authorization": f"Bearer {secret}", "content-type": "application/json"},
    )
    return answer.status_code


def test_sign_in_and_see_the_location_status(browser_page: Any, console_site: ConsoleSite) -> None:
    page = browser_page
    _sign_in(page, console_site)
    page.keyboard.press("Tab")  # keyboard users land on the skip link first
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    card = page.locator("section.card", has_text="Smith Roofing")
    assert LOCATION in card.inner_text()
    assert card.get_by_test_id("health").inner_text() == "Needs attention: dead letters"
    assert card.get_by_test_id("dead").inner_text() == "1"
    assert card.get_by_test_id("pending").inner_text() == "1"  # the lead, received over HTTP
    assert card.locator("svg.chart polyline").count() == 2  # events in and out, per hour
    assert "GHL refused the data" in card.inner_text()  # the last error, in plain words


def test_rotate_a_secret_and_replay_a_dead_letter(
    browser_page: Any, console_site: ConsoleSite
) -> None:
    page = browser_page
    _sign_in(page, console_site)
    page.get_by_role("link", name="Connections").click()
    url = f"/hooks/dripjobs/{console_site.connection_id}/lead.created"
    assert page.get_by_text(url).count() == 1  # the URL a Zap posts lead.created to
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.get_by_role("button", name="Copy the lead.created URL").last.click()
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied.endswith(url) and copied.startswith(console_site.url)
    page.get_by_role("button", name="Rotate the secret").click()  # confirm() accepted
    new_secret = page.get_by_test_id("new-secret").inner_text()
    assert new_secret and new_secret != console_site.secret
    assert _hook(console_site, console_site.secret) == 401  # the old secret is refused
    assert _hook(console_site, new_secret) == 202

    page.get_by_role("link", name="Dead letters").click()
    letter = page.locator("li.card", has_text="cust-bad")
    assert "GHL refused the data" in letter.inner_text()
    letter.get_by_text("Reason and payload").click()
    assert "not-an-email" in letter.inner_text()  # the payload it died with
    letter.get_by_role("button", name="Replay").click()
    assert "queued again" in page.get_by_test_id("notice").inner_text()
    assert list_dead_letters(console_site.engine) == []


def test_mapping_tester_and_record_search(browser_page: Any, console_site: ConsoleSite) -> None:
    page = browser_page
    _sign_in(page, console_site)
    page.get_by_role("link", name="Mapping tester").click()
    page.get_by_label("Start from an example of").select_option("task.created")
    page.wait_for_url("**/tester?event=task.created")  # the select submits itself
    assert "task_id" in page.get_by_label("Payload (JSON, as the Zap sends it)").input_value()
    page.get_by_role("button", name="Show the GHL calls").click()
    result = page.get_by_test_id("tester-result").inner_text()
    assert "task.created: 2 GHL calls (nothing was sent)" in result
    assert "POST" in result and "/tasks" in result
    recipes = page.get_by_test_id("tester-recipes").inner_text()
    assert "No recipe runs for this event." in recipes  # the preset's recipes are all off

    page.get_by_role("link", name="Records").click()
    page.get_by_label("Name, email, phone, DripJobs id or GHL id").fill(CUSTOMER_EMAIL)
    page.get_by_role("button", name="Search").click()
    record = page.get_by_test_id("record").inner_text()
    assert "cust-ava" in record and LOCATION in record


def test_mapping_tester_shows_the_recipe_steps_and_timers(
    browser_page: Any, console_store: sa.Engine
) -> None:
    page = browser_page
    with start(console_store, config=console_config(recipes=TESTER_RECIPES)) as site:
        _sign_in(page, site)
        page.get_by_role("link", name="Mapping tester").click()
        page.get_by_label("Event", exact=True).fill("lead.created")
        page.get_by_label("Payload (JSON, as the Zap sends it)").fill(json.dumps(TESTER_LEAD))
        page.get_by_role("button", name="Show the GHL calls").click()
        recipes = page.get_by_role("region", name="Recipes for dripjobs.lead.created")
        assert recipes.get_by_role("heading", name="call-new-leads").count() == 1
        text = recipes.inner_text()
    assert "2 would run (nothing was sent)" in text
    assert "task 'Call Ann within 5 minutes'" in text
    assert "Timer: runs after 3 days" in text and "dripjobs.proposal.accepted" in text
    assert "referral-thanks: lead_source: 'Website' fails `equals`" in text
