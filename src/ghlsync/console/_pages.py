"""The pages (GET): Overview, Connections, Dead letters, Mapping tester, Records, Activity."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ghlsync.console import _data
from ghlsync.console._app import Console
from ghlsync.console._auth import Signed
from ghlsync.console._connections import connections_view
from ghlsync.console._tester import sample_payloads

__all__ = ["not_found", "routes"]

ENTITY_TYPES = ("contact", "task", "note", "appointment", "opportunity")
PAGE_SIZE = 50  # rows per page of the dead letters and the activity


def _page(request: Request) -> int:
    """The 1-based page number of `?page=` (1 when absent or not a positive number)."""
    raw = request.query_params.get("page", "")
    return int(raw) if raw.isdigit() and 0 < int(raw) < 1_000_000 else 1


def _paged(rows: list[Any], page: int, request: Request) -> dict[str, Any]:
    """The page's rows (one more was fetched to know there is a next page) and its links."""
    more = len(rows) > PAGE_SIZE

    def link(number: int) -> str:
        query = {**request.query_params, "page": str(number)}
        return "?" + urlencode(query)

    return {
        "rows": rows[:PAGE_SIZE],
        "pager": {
            "page": page,
            "newer": link(page - 1) if page > 1 else None,
            "older": link(page + 1) if more else None,
            "first": (page - 1) * PAGE_SIZE + 1,
            "last": (page - 1) * PAGE_SIZE + min(len(rows), PAGE_SIZE),
        },
    }


def routes(console: Console) -> list[Route]:
    """The GET routes, each behind the sign-in."""
    pages = {
        "/": overview,
        "/connections": connections,
        "/dead-letters": dead_letters,
        "/tester": tester,
        "/records": records,
        "/activity": activity,
    }
    return [
        Route(path, console.signed(handler), methods=["GET"]) for path, handler in pages.items()
    ]


def _arg(request: Request, name: str) -> str | None:
    value = request.query_params.get(name, "").strip()
    return value or None


async def overview(console: Console, request: Request, signed: Signed) -> Response:
    """Per location: health, queue, lag, budget, 24 h chart, last errors."""
    cards = await asyncio.to_thread(
        _data.overview, console.engine, console.config, console.clock.now()
    )
    return console.page(request, "overview.html", signed, cards=cards, nav="overview")


async def connections(console: Console, request: Request, signed: Signed, **extra: Any) -> Response:
    """Tokens, webhook URLs, write-back URLs; `extra` carries a one-time notice."""
    known = await asyncio.to_thread(_data.known_locations, console.engine, console.config)
    view = await asyncio.to_thread(
        connections_view, console.engine, console.config, console.public_url(request), known
    )
    return console.page(request, "connections.html", signed, nav="connections", **view, **extra)


def dead_filters(source: Any) -> dict[str, str | None]:
    """The dead-letter filters from a query string or a form."""
    return {
        name: (str(source.get(name, "")).strip() or None) for name in ("location", "entity", "text")
    }


async def dead_letters(
    console: Console, request: Request, signed: Signed, notice: str | None = None
) -> Response:
    """The list, filtered; each with its reason in words and its payload."""
    filters = dead_filters(request.query_params)
    show_replayed = request.query_params.get("replayed") == "1"
    page = _page(request)
    found = await asyncio.to_thread(
        lambda: _data.dead_letter_rows(
            console.engine,
            location=filters["location"],
            entity=filters["entity"],
            text=filters["text"],
            replayed=show_replayed,
            limit=PAGE_SIZE + 1,
            offset=(page - 1) * PAGE_SIZE,
        )
    )
    known = await asyncio.to_thread(_data.known_locations, console.engine, console.config)
    return console.page(
        request,
        "dead_letters.html",
        signed,
        nav="dead",
        **_paged(found, page, request),
        filters=filters,
        show_replayed=show_replayed,
        locations=list(known),
        entities=ENTITY_TYPES,
        notice=notice,
    )


async def tester(
    console: Console,
    request: Request,
    signed: Signed,
    result: dict[str, Any] | None = None,
    event: str | None = None,
    payload: str | None = None,
    sent: dict[str, Any] | None = None,
) -> Response:
    """Pick an event (its sample payload fills the box) or paste one; results below. With a
    sandbox environment, the payload can also be sent to the sandbox (`sent`)."""
    from ghlsync.console._sandbox_send import sandbox_config

    samples = await asyncio.to_thread(sample_payloads, console.config)
    sandbox = sandbox_config(console.config)
    first = "lead.created" if "lead.created" in samples else next(iter(samples), "")
    chosen = event or _arg(request, "event") or first
    return console.page(
        request,
        "tester.html",
        signed,
        nav="tester",
        samples=samples,
        event=chosen,
        payload=payload if payload is not None else samples.get(chosen, "{}"),
        result=result,
        sandbox_url=sandbox.ghl.base_url if sandbox is not None else None,
        sent=sent,
    )


async def records(console: Console, request: Request, signed: Signed) -> Response:
    """Search by DripJobs id, GHL id, email, phone or name; one match shows the record."""
    from ghlsync.records import lookup

    query = _arg(request, "q")
    result = None
    if query:
        found = await lookup(console.engine, console.config, query)
        result = found.to_dict()
    return console.page(request, "records.html", signed, nav="records", query=query, result=result)


async def activity(console: Console, request: Request, signed: Signed) -> Response:
    """The audit log, filterable by location, direction and outcome."""
    filters = {name: _arg(request, name) for name in ("location", "direction", "outcome")}
    page = _page(request)
    found = await asyncio.to_thread(
        lambda: _data.activity(
            console.engine,
            location=filters["location"],
            direction=filters["direction"],
            outcome=filters["outcome"],
            limit=PAGE_SIZE + 1,
            offset=(page - 1) * PAGE_SIZE,
        )
    )
    known = await asyncio.to_thread(_data.known_locations, console.engine, console.config)
    return console.page(
        request,
        "activity.html",
        signed,
        nav="activity",
        **_paged(found, page, request),
        filters=filters,
        locations=list(known),
    )


async def not_found(console: Console, request: Request, signed: Signed) -> Response:
    """404 inside the console (still behind the sign-in)."""
    return console.page(
        request,
        "message.html",
        signed,
        status=404,
        title="Not found",
        message="There is no such console page.",
    )
