"""Workflows and campaigns by name: `"New lead nurture"` → its GHL id, cached per location.

Like the pipelines (`flows.to_ghl._pipelines`): the list is kept in this process for
`REFRESH_AFTER` seconds and fetched again on a miss at most that often. An id works too. A
dry run without a cached list answers `<workflow NAME>` instead of calling.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from ghlsync.engine.flows.recipes._context import StepContext
from ghlsync.mapping import MappingError

REFRESH_AFTER = 300.0
_LISTS = {"workflow": ("get-workflow", "workflows"), "campaign": ("get-campaigns", "campaigns")}
_lock = threading.Lock()
_cache: dict[tuple[str, str], tuple[float, dict[str, str]]] = {}  # (kind, loc) -> (at, names)
_fetching: dict[tuple[str, str, str], asyncio.Lock] = {}


def forget_names() -> None:
    """Drop every cached list (tests)."""
    with _lock:
        _cache.clear()
        _fetching.clear()


async def resolve_name(ctx: StepContext, kind: str, wanted: str) -> str:
    """The id of the location's `kind` ("workflow" | "campaign") called `wanted` (or with that
    id); MappingError lists the names it has."""
    key = (kind, ctx.location_id)
    found, cached = _lookup(key, wanted)
    if found is None and ctx.live:
        async with _single_flight(key):  # steps running together fetch the list once
            found, cached = _lookup(key, wanted)
            fresh = cached is None or ctx.clock.monotonic() - cached[0] >= REFRESH_AFTER
            if found is None and fresh:
                names = await _fetch(ctx, kind)
                with _lock:
                    _cache[key] = (ctx.clock.monotonic(), names)
                cached, found = (0.0, names), _match(names, wanted)
    if found is not None:
        return found
    if not ctx.live and cached is None:
        return f"<{kind} {wanted}>"
    known = ", ".join(repr(n) for n in sorted((cached or (0.0, {}))[1].values())) or "none"
    raise MappingError(kind, wanted, f"is not a {kind} of this GHL location; its {kind}s: {known}")


def _lookup(
    key: tuple[str, str], wanted: str
) -> tuple[str | None, tuple[float, dict[str, str]] | None]:
    with _lock:
        cached = _cache.get(key)
    return (_match(cached[1], wanted) if cached else None), cached


def _single_flight(key: tuple[str, str]) -> asyncio.Lock:
    """One lock per list and event loop (a lock cannot be shared across loops)."""
    loop_key = (*key, str(id(asyncio.get_running_loop())))
    with _lock:
        return _fetching.setdefault(loop_key, asyncio.Lock())


async def _fetch(ctx: StepContext, kind: str) -> dict[str, str]:
    operation, wrapper = _LISTS[kind]
    answer: Any = await ctx.send(operation, params={"locationId": ctx.location_id})
    items = answer.get(wrapper, []) if isinstance(answer, dict) else []
    return {str(i["id"]): str(i.get("name") or i["id"]) for i in items if i.get("id")}


def _match(names: dict[str, str], wanted: str) -> str | None:
    folded = wanted.strip().casefold()
    for ident, name in names.items():
        if folded in (ident.casefold(), name.casefold()):
            return ident
    return None
