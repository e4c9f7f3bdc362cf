"""The mapping tester's recipes part over HTTP against a real app on loopback: the steps the
event's recipes would run (templates filled), the timer an `after:` wait schedules, the
condition that kept a recipe from running, "no recipe runs" when none does, and nothing sent
to GHL or scheduled in the store (the same engine as `ghlsync preview`)."""

from __future__ import annotations

import calendar
import html
import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx2
import sqlalchemy as sa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ghlsync.engine.flows.recipes import timer_status
from ghlsync.mapping import AppConfig
from ghlsync.server._thread import serve_in_thread
from tests._console_kit import (
    TESTER_LEAD,
    TESTER_RECIPES,
    console_config,
    csrf_of,
    sign_in,
    start,
)


@contextmanager
def _recording_ghl() -> Iterator[tuple[str, list[str]]]:
    """A stand-in GHL that records every request it gets (none is expected)."""
    seen: list[str] = []

    async def record(request: Request) -> Response:
        seen.append(f"{request.method} {request.url.path}")
        return JSONResponse({})

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    with serve_in_thread(Starlette(routes=[Route("/{path:path}", record, methods=methods)])) as url:
        yield url, seen


def _try(config: AppConfig, engine: sa.Engine, payloads: list[dict[str, Any]]) -> list[str]:
    """POST each payload as lead.created to the tester; the recipes section of each answer,
    as text (tags dropped, entities unescaped)."""
    sections = []
    with start(engine, config=config) as site, httpx2.Client() as client:
        sign_in(client, site)
        for payload in payloads:
            page = client.get(f"{site.console}/tester?event=lead.created")
            answer = client.post(
                f"{site.console}/tester",
                data={
                    "csrf": csrf_of(page.text),
                    "event": "lead.created",
                    "payload": json.dumps(payload),
                },
            )
            assert answer.status_code == 200, answer.text
            found = re.search(r'data-testid="tester-recipes">(.*?)</section>', answer.text, re.S)
            assert found, "no recipes section on the tester's answer"
            assert '<h2 id="recipes">' in found.group(1)  # a heading labels the section
            text = html.unescape(re.sub(r"<[^>]+>", " ", found.group(1)))
            sections.append(re.sub(r"\s+", " ", text))
    return sections


def test_tester_lists_recipe_steps_and_timers_and_sends_nothing(console_store: sa.Engine) -> None:
    with _recording_ghl() as (ghl_url, seen):
        config = console_config(ghl_url, recipes=TESTER_RECIPES)
        walk_in = {**TESTER_LEAD, "lead_source": "Walk-in"}
        website, none = _try(config, console_store, [TESTER_LEAD, walk_in])

    assert "Recipes for dripjobs.lead.created: 2 would run (nothing was sent)" in website
    # call-new-leads runs now: its task's title filled from the template, then its tag.
    assert "call-new-leads Runs now." in website
    assert "create_task : task 'Call Ann within 5 minutes'" in website
    assert "POST /contacts/<contact of customer cust-ann>/tasks" in website
    assert '"title": "Call Ann within 5 minutes"' in website
    assert "add_tags : tags + new-lead" in website
    # check-in-later waits: the timer it would schedule, and what cancels it.
    timer = re.search(r"check-in-later Timer: runs after 3 days, at (\S+ \S+ UTC)", website)
    assert timer, website
    due = calendar.timegm(time.strptime(timer.group(1), "%Y-%m-%d %H:%M UTC"))
    assert abs(due - (time.time() + 3 * 86400)) < 120
    assert "unless dripjobs.proposal.accepted comes first" in website
    assert "create_task : task 'Check in with Ann'" in website
    # referral-thanks does not run: the condition that failed.
    assert "Not run referral-thanks: lead_source: 'Website' fails `equals`" in website

    assert "Recipes for dripjobs.lead.created: none would run (nothing was sent)" in none
    assert "No recipe runs for this event." in none
    assert "call-new-leads: lead_source: 'Walk-in' fails `in`" in none
    assert "check-in-later: lead_source: 'Walk-in' fails `in`" in none

    assert seen == []  # nothing reached GHL
    assert timer_status(console_store, time.time()) == []  # no timer stored


def test_tester_says_no_recipe_runs_when_none_is_on(console_store: sa.Engine) -> None:
    (text,) = _try(console_config(), console_store, [TESTER_LEAD])  # the preset's are all off
    assert "none would run" in text and "No recipe runs for this event." in text
    assert "No recipe is switched on" in text
