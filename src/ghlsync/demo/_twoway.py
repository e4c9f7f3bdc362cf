"""Two-way sync on loopback, driven like two people: one working in GHL, one in DripJobs.

```python
async with TwoWay(PipelineOptions(database_url=url)) as loop:
    contact = await loop.ghl_create_contact(firstName="Ada", email="ada@example.com")
    await loop.quiesce()                        # until nothing moves on either side
    mark = loop.mark()
    await loop.dj_create_lead(first_name="Lin", email="lin@example.com")
    await loop.quiesce()
    traffic = await loop.since(mark)            # GHL writes by ghlsync, write-backs received
```

The GHL person calls the sandbox's API (its webhooks reach ghlsync's `/hooks/ghl`); the
DripJobs person uses the emulator's admin API (its triggers reach `/hooks/dripjobs/...`).
Everything ghlsync does shows in the sandbox's call log and the emulator's write-back log;
the person's own calls are subtracted, so `since()` counts only what ghlsync did.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import httpx2
import sqlalchemy as sa

from ghlsync.demo._pipeline import Pipeline, PipelineError, PipelineOptions
from ghlsync.engine import queue_status
from ghlsync.sandbox import SandboxServer
from ghlsync.store._tables_twoway import writeback_outbox

_POLL_SECONDS = 0.05
_QUIET_POLLS = 4  # unchanged polls in a row that count as "nothing moves" (0.2 s)
_CALENDAR_VERSION = "2021-04-15"
_VERSION = "2021-07-28"


@dataclass(frozen=True, slots=True)
class Mark:
    """Where the logs stood at one moment (see `TwoWay.since`)."""

    ghl_log: int
    own_calls: Counter[tuple[str, str, int]]
    writebacks: int
    fired: int


@dataclass(frozen=True, slots=True)
class Traffic:
    """What ghlsync did between a mark and now."""

    ghl_calls: int  # every GHL API call ghlsync made (429s included)
    ghl_writes: int  # of which successful writes (not GETs, not searches)
    writebacks: list[dict[str, Any]]  # write-backs the emulator applied (unique webhook-ids)
    fired: list[dict[str, Any]]  # DripJobs triggers the emulator fired at ghlsync


class TwoWay:
    """A two-way `Pipeline` plus a GHL user and a DripJobs user."""

    def __init__(self, options: PipelineOptions | None = None) -> None:
        base = options or PipelineOptions()
        fields = {name: getattr(base, name) for name in base.__slots__}
        self.pipe = Pipeline(PipelineOptions(**{**fields, "two_way": True}))
        self._own: Counter[tuple[str, str, int]] = Counter()
        self._http: httpx2.AsyncClient | None = None
        self._published = 0

    async def __aenter__(self) -> TwoWay:
        await self.pipe.__aenter__()
        self._http = httpx2.AsyncClient(base_url=self.sandbox.url, timeout=30)
        self._count_webhooks()
        self.origin = self.mark()  # everything since the start
        return self

    def _count_webhooks(self) -> None:
        """Count the webhooks the sandbox queues, so `quiesce` sees the ones not yet sent."""
        state = self.sandbox.state
        publish = state.event_hook
        assert publish is not None

        def counted(event: dict[str, Any]) -> None:
            self._published += 1
            publish(event)

        self._published = 0
        state.event_hook = counted

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._http is not None:
            await self._http.aclose()
        await self.pipe.__aexit__(t, e, tb)

    @property
    def sandbox(self) -> SandboxServer:
        """The GHL sandbox (its `/dripjobs/` paths are the emulator)."""
        assert self.pipe.sandbox is not None
        return self.pipe.sandbox

    # -- the GHL user ------------------------------------------------------------------
    async def ghl(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """One GHL API call as the location's user; a 429 is waited out and retried."""
        version = _CALENDAR_VERSION if path.startswith("/calendars") else _VERSION
        headers = {"Authorization": f"Bearer {self.sandbox.token}", "Version": version}
        http = self._client()
        for _ in range(50):
            response = await http.request(method, path, json=body, headers=headers)
            self._own[(method, path.split("?")[0], response.status_code)] += 1
            if response.status_code != 429:
                break
            await asyncio.sleep(0.1)
        if response.status_code >= 400:
            raise PipelineError(f"GHL {method} {path}: {response.status_code} {response.text}")
        return response.json()

    async def ghl_create_contact(self, **fields: Any) -> str:
        """A contact created in GHL (a form, a funnel, someone typing); its id."""
        body = {"locationId": self.sandbox.location_id, **fields}
        answer = await self.ghl("POST", "/contacts/", body)
        return str(answer["contact"]["id"])

    async def ghl_book(self, contact_id: str, start: str, end: str, title: str) -> str:
        """An appointment booked in GHL; its id."""
        body = {
            "calendarId": self.sandbox.calendar_id,
            "locationId": self.sandbox.location_id,
            "contactId": contact_id,
            "startTime": start,
            "endTime": end,
            "title": title,
            "ignoreFreeSlotValidation": True,
        }
        answer = await self.ghl("POST", "/calendars/events/appointments", body)
        return str(answer["id"])

    async def ghl_reschedule(self, appointment_id: str, start: str, end: str) -> None:
        """An appointment moved in GHL."""
        body = {"startTime": start, "endTime": end, "ignoreFreeSlotValidation": True}
        await self.ghl("PUT", f"/calendars/events/appointments/{appointment_id}", body)

    async def ghl_add_tags(self, contact_id: str, *tags: str) -> None:
        """Tags added to a contact in GHL (`deal:<stage>` moves the DripJobs deal)."""
        await self.ghl("POST", f"/contacts/{contact_id}/tags", {"tags": list(tags)})

    async def ghl_remove_tags(self, contact_id: str, *tags: str) -> None:
        """Tags removed from a contact in GHL."""
        await self.ghl("DELETE", f"/contacts/{contact_id}/tags", {"tags": list(tags)})

    # -- the DripJobs user -------------------------------------------------------------
    async def dj(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """One call to the emulator's admin API (`path` after `/dripjobs/_admin`)."""
        response = await self._client().request(method, f"/dripjobs/_admin{path}", json=body)
        if response.status_code >= 400:
            raise PipelineError(f"DripJobs {method} {path}: {response.status_code} {response.text}")
        return response.json()

    async def dj_create_lead(self, **fields: str) -> str:
        """A lead typed into DripJobs; its customer id."""
        return str((await self.dj("POST", "/leads", fields))["id"])

    async def dj_schedule(self, customer_id: str, start: str, end: str, title: str) -> str:
        """An appointment scheduled in DripJobs; its id."""
        body = {"customer_id": customer_id, "start": start, "end": end, "title": title}
        return str((await self.dj("POST", "/appointments", body))["id"])

    async def dj_reschedule(self, appointment_id: str, start: str, end: str) -> None:
        """An appointment moved in DripJobs."""
        await self.dj("PATCH", f"/appointments/{appointment_id}", {"start": start, "end": end})

    async def dj_move_deal(self, customer_id: str, stage: str) -> None:
        """A deal moved in DripJobs."""
        await self.dj("POST", "/deals/move", {"customer_id": customer_id, "stage": stage})

    # -- watching ----------------------------------------------------------------------
    def mark(self) -> Mark:
        """The logs' positions now."""
        dripjobs = self._dripjobs()
        with self.sandbox.state.lock, dripjobs.lock:
            return Mark(
                ghl_log=len(self.sandbox.state.requests),
                own_calls=Counter(self._own),
                writebacks=len(dripjobs.writebacks),
                fired=len(dripjobs.fired),
            )

    async def since(self, mark: Mark) -> Traffic:
        """What ghlsync did since `mark`: its GHL calls and writes, write-backs, triggers."""
        dripjobs = self._dripjobs()
        with self.sandbox.state.lock, dripjobs.lock:
            log = list(self.sandbox.state.requests[mark.ghl_log :])
            writebacks = [dict(e) for e in dripjobs.writebacks[mark.writebacks :]]
            fired = [dict(e) for e in dripjobs.fired[mark.fired :]]
        calls = Counter((e["method"], e["path"], int(e["status"])) for e in log)
        calls.subtract(self._own - mark.own_calls)
        theirs = +calls
        writes = sum(n for (m, p, s), n in theirs.items() if _is_write(m, p) and s < 300)
        return Traffic(sum(theirs.values()), writes, writebacks, fired)

    async def quiesce(self, within: float | None = None) -> None:
        """Wait until nothing moves: queue and outbox idle, no trigger or webhook in flight."""
        deadline = time.monotonic() + (within or self.pipe.options.drain_timeout)
        last: tuple[int, ...] | None = None
        quiet = 0
        while quiet < _QUIET_POLLS:
            now = await asyncio.to_thread(self._fingerprint)
            busy = now[0] > 0
            quiet = quiet + 1 if (now == last and not busy) else 0
            last = now
            self.pipe._check_worker()
            if time.monotonic() > deadline:
                raise PipelineError(f"the two-way loop did not settle: {now}")
            await asyncio.sleep(_POLL_SECONDS)

    def _fingerprint(self) -> tuple[int, ...]:
        """(work in flight, then counters that move whenever anything happens)."""
        assert self.pipe.engine is not None
        totals = queue_status(self.pipe.engine).totals()
        outbox = _outbox_open(self.pipe.engine)
        counters = self._dripjobs().counters()
        with self.sandbox.state.lock:
            log = len(self.sandbox.state.requests)
            hooks = len(self.sandbox.state.webhook_deliveries)
        webhooks = max(0, self._published - hooks)  # queued in the sandbox, not yet delivered
        in_flight = totals["pending"] + totals["leased"] + outbox + counters["fire_pending"]
        in_flight += webhooks
        return (in_flight, log, hooks, counters["requests"], sum(counters["fired"].values()))

    async def ghl_state(self) -> dict[str, Any]:
        """The sandbox location's contacts and appointments."""
        state = await self.pipe.sandbox_json("/_sandbox/state")
        location: dict[str, Any] = state["locations"][self.sandbox.location_id]
        return location

    async def dj_state(self) -> dict[str, Any]:
        """The emulator's customers, leads, appointments and deals."""
        state: dict[str, Any] = await self.dj("GET", "/state")
        return state

    async def dj_counters(self) -> dict[str, Any]:
        """The emulator's counters (write-backs, duplicates, triggers fired)."""
        counters: dict[str, Any] = await self.dj("GET", "/counters")
        return counters

    def _client(self) -> httpx2.AsyncClient:
        assert self._http is not None, "use TwoWay as an async context manager"
        return self._http

    def _dripjobs(self) -> Any:
        dripjobs = self.sandbox.dripjobs
        assert dripjobs is not None
        return dripjobs


def _is_write(method: str, path: str) -> bool:
    return method != "GET" and not path.rstrip("/").endswith("/search")


def _outbox_open(engine: sa.Engine) -> int:
    """Write-backs not settled yet (pending or being sent)."""
    query = sa.select(sa.func.count()).where(writeback_outbox.c.status.in_(("pending", "sending")))
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())
