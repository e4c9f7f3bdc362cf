"""Issue 12 §1: long lists in the console come in pages of PAGE_SIZE, newest first, with
Newer/Older links that keep the filters; every row is on exactly one page."""

from __future__ import annotations

import re
import time

import httpx2
import sqlalchemy as sa

from ghlsync.console._pages import PAGE_SIZE
from ghlsync.store._tables_engine import audit_log, dead_letters
from tests._console_kit import ConsoleSite, sign_in

_ROWS = PAGE_SIZE * 2 + 3  # three pages, the last one short


def _fill(engine: sa.Engine) -> None:
    now = time.time()
    with engine.begin() as conn:
        conn.execute(
            sa.insert(audit_log),
            [
                {"at": now - i, "location_id": "loc-p", "entity_type": "contact",
                 "source_id": f"act-{i:03d}", "action": "created", "calls": 1}
                for i in range(_ROWS)
            ],
        )  # fmt: skip
        conn.execute(
            sa.insert(dead_letters),
            [
                {"work_id": i, "location_id": "loc-p", "entity_type": "contact",
                 "source_id": f"dead-{i:03d}", "event": "customer.created", "payload": "{}",
                 "reason": "GHL rejected the contact: 422", "error_class": "UnprocessableError",
                 "attempts": 1, "created_at": now - i}
                for i in range(_ROWS)
            ],
        )  # fmt: skip


def _walk(client: httpx2.Client, url: str, prefix: str) -> list[list[str]]:
    """Follow the Older links from the first page; the ids on each page, in order."""
    pages: list[list[str]] = []
    next_url: str | None = url
    while next_url is not None:
        html = client.get(next_url).text
        pages.append(re.findall(rf"\b{prefix}-\d{{3}}\b", html))
        older = re.search(r'<a href="(\?[^"]+)" rel="next"', html)
        next_url = url.split("?")[0] + older.group(1).replace("&amp;", "&") if older else None
        assert len(pages) <= 5, "the Older links never end"
    return pages


def test_dead_letters_and_activity_page_through_every_row_once(console_site: ConsoleSite) -> None:
    _fill(console_site.engine)
    with httpx2.Client() as client:
        sign_in(client, console_site)
        dead = _walk(client, f"{console_site.console}/dead-letters?location=loc-p", "dead")
        lines = _walk(client, f"{console_site.console}/activity?location=loc-p", "act")
        second = client.get(f"{console_site.console}/activity?location=loc-p&page=2").text

    for pages, prefix in ((dead, "dead"), (lines, "act")):
        assert [len(set(p)) for p in pages] == [PAGE_SIZE, PAGE_SIZE, 3]
        shown = [i for page in pages for i in dict.fromkeys(page)]
        assert shown == [f"{prefix}-{i:03d}" for i in range(_ROWS)]  # newest first, each once
    assert 'rel="prev"' in second and "location=loc-p" in second  # the filter is kept
    assert f"Lines {PAGE_SIZE + 1}–{2 * PAGE_SIZE} (page 2)" in second


def test_a_bad_page_number_is_the_first_page(console_site: ConsoleSite) -> None:
    with httpx2.Client() as client:
        sign_in(client, console_site)
        answer = client.get(f"{console_site.console}/dead-letters", params={"page": "-3"})
    assert answer.status_code == 200 and "cust-bad" in answer.text
