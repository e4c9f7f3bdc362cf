"""`lookup`: the matches for a query, and the record when there is exactly one."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from ghlsync.mapping import AppConfig
from ghlsync.records._build import build_record
from ghlsync.records._find import Person, find_people
from ghlsync.records._live import add_live

__all__ = ["LookupResult", "lookup"]


@dataclass(slots=True)
class LookupResult:
    """`matches` (everyone QUERY may mean) and, for exactly one, its `record`."""

    query: str
    matches: list[Person] = field(default_factory=list)
    record: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: `{query, matches: [...], record: {...} | null}`."""
        return {
            "query": self.query,
            "matches": [m.to_dict() for m in self.matches],
            "record": self.record,
        }


def find(engine: sa.Engine, config: AppConfig, query: str) -> LookupResult:
    """Store only: the matches, and the record of a single match."""
    with engine.connect() as conn:
        people = find_people(conn, query, phone_region=config.defaults.phone_region)
        result = LookupResult(query, people)
        if len(people) == 1:
            result.record = build_record(conn, people[0], config)
    return result


async def lookup(
    engine: sa.Engine, config: AppConfig, query: str, *, client: Any = None
) -> LookupResult:
    """Like `find`; with a GHL `client`, the single match's current GHL state too (`live`)."""
    import asyncio

    result = await asyncio.to_thread(find, engine, config, query)
    person = result.matches[0] if len(result.matches) == 1 else None
    if client is not None and result.record is not None and person and person.ghl_id:
        await add_live(result.record, client, person.location_id, person.ghl_id)
    return result
