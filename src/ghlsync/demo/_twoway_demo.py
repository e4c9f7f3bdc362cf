"""`ghlsync demo --two-way`: changes on both sides, then a check that both sides agree.

Three phases, each run to quiescence (nothing moving on either side) before the next:

1. **GHL → DripJobs**: contacts created in GHL, appointments booked and moved, deal tags
   set. Each must become exactly one write-back; any GHL write by ghlsync is an echo.
2. **DripJobs → GHL**: leads typed into DripJobs, appointments scheduled and moved, deals
   moved, a customer edited. GHL gets the writes; any write-back is an echo.
3. **Both at once**: new people on both sides concurrently; only the GHL ones may be
   written back.

Then GHL and DripJobs are compared person by person (`_twoway_agree`).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from ghlsync.demo._pipeline import PipelineOptions
from ghlsync.demo._twoway import Traffic, TwoWay
from ghlsync.demo._twoway_agree import agreement_problems, duplicate_count

_FIRST = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia")
_LAST = ("Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson")
_ZONE = timezone(timedelta(hours=-5))
_FIRST_SLOT = datetime(2031, 4, 7, 10, 0, tzinfo=_ZONE)

PhaseProgress = Callable[[str], None]
"""Called with a phase's name when it starts."""


@dataclass(slots=True)
class PhaseLine:
    """What one phase changed and what ghlsync did about it."""

    name: str
    changes: int
    ghl_writes: int  # successful GHL writes by ghlsync
    writebacks: int  # write-backs DripJobs received (unique webhook-ids)
    expected_writebacks: int
    echo_writes: int
    seconds: float


@dataclass(slots=True)
class TwoWaySummary:
    """The two-way demo's result."""

    phases: list[PhaseLine] = field(default_factory=list)
    writebacks: dict[str, int] = field(default_factory=dict)  # by action
    fired: dict[str, int] = field(default_factory=dict)  # DripJobs triggers, by event
    ghl_calls: int = 0  # every GHL API call ghlsync made
    duplicate_webhook_ids: int = 0  # outbox retries DripJobs deduped (not duplicates)
    duplicates: int = 0  # leads or appointments that exist twice, on either side
    problems: list[str] = field(default_factory=list)
    elapsed: float = 0.0
    database_url: str = ""

    @property
    def echo_writes(self) -> int:
        """Writes caused by ghlsync's own writes coming back, over all phases."""
        return sum(phase.echo_writes for phase in self.phases)

    @property
    def ok(self) -> bool:
        """Both sides agree, with no echo write and no duplicate."""
        return not self.problems and self.echo_writes == 0 and self.duplicates == 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-able (the `--json` output)."""
        data = asdict(self)
        data["echo_writes"] = self.echo_writes
        data["ok"] = self.ok
        return data


@dataclass(slots=True)
class _People:
    """Names, emails and phones handed out in order, reproducible from the seed."""

    rng: random.Random
    count: int = 0

    def next(self, side: str) -> dict[str, str]:
        self.count += 1
        n = self.count
        first, last = self.rng.choice(_FIRST), self.rng.choice(_LAST)
        return {
            "first": first,
            "last": last,
            "email": f"{first}.{last}.{side}{n}@example.com".lower(),
            "phone": f"+1512555{2000 + n:04d}",
        }


def _slot(day: int, hours: int = 0) -> tuple[str, str]:
    start = _FIRST_SLOT + timedelta(days=day, hours=hours)
    return start.isoformat(), (start + timedelta(hours=1)).isoformat()


async def run_two_way(
    people: int = 6,
    seed: int = 7,
    options: PipelineOptions | None = None,
    *,
    on_phase: PhaseProgress | None = None,
) -> TwoWaySummary:
    """Run the three phases on a fresh two-way loop and check the result."""
    started = time.monotonic()
    summary = TwoWaySummary()
    names = _People(random.Random(seed))
    async with TwoWay(options) as loop:
        await loop.quiesce()
        for name, phase in (
            ("GHL → DripJobs", _from_ghl),
            ("DripJobs → GHL", _from_dripjobs),
            ("both at once", _both),
        ):
            if on_phase is not None:
                on_phase(name)
            summary.phases.append(await phase(loop, names, people, name))
        await _finish(loop, summary)
    summary.database_url = loop.pipe.database_url
    summary.elapsed = time.monotonic() - started
    return summary


async def _measure(
    loop: TwoWay, name: str, changes: int, expected: int, act: Callable[[], Any]
) -> tuple[PhaseLine, Traffic]:
    mark = loop.mark()
    phase_start = time.monotonic()
    await act()
    await loop.quiesce()
    traffic = await loop.since(mark)
    line = PhaseLine(
        name,
        changes,
        traffic.ghl_writes,
        len(traffic.writebacks),
        expected,
        0,
        time.monotonic() - phase_start,
    )
    return line, traffic


async def _from_ghl(loop: TwoWay, names: _People, people: int, name: str) -> PhaseLine:
    booked = max(1, people // 2)
    moved = max(1, booked // 2)
    tagged = min(2, people)
    contacts: list[str] = []
    appointments: list[str] = []

    async def act() -> None:
        for _ in range(people):
            p = names.next("ghl")
            contacts.append(
                await loop.ghl_create_contact(
                    firstName=p["first"], lastName=p["last"], email=p["email"], phone=p["phone"]
                )
            )
        await loop.quiesce()
        for i, contact_id in enumerate(contacts[:booked]):
            appointments.append(await loop.ghl_book(contact_id, *_slot(i), "Estimate"))
        await loop.quiesce()
        for i, appointment_id in enumerate(appointments[:moved]):
            await loop.ghl_reschedule(appointment_id, *_slot(i, hours=3))
        for contact_id in contacts[:tagged]:
            await loop.ghl_add_tags(contact_id, "deal:estimate scheduled")

    expected = people + booked + moved + tagged
    line, _ = await _measure(loop, name, expected, expected, act)
    # Every GHL write here answers a change ghlsync itself caused; so does a surplus write-back.
    line.echo_writes = line.ghl_writes + max(0, line.writebacks - expected)
    return line


async def _from_dripjobs(loop: TwoWay, names: _People, people: int, name: str) -> PhaseLine:
    scheduled = max(1, people // 2)
    customers: list[str] = []
    appointments: list[str] = []

    async def act() -> None:
        for _ in range(people):
            p = names.next("dj")
            customers.append(
                await loop.dj_create_lead(
                    first_name=p["first"], last_name=p["last"], email=p["email"], phone=p["phone"]
                )
            )
        await loop.quiesce()
        for i, customer_id in enumerate(customers[:scheduled]):
            appointments.append(await loop.dj_schedule(customer_id, *_slot(20 + i), "Estimate"))
        await loop.quiesce()
        await loop.dj_reschedule(appointments[0], *_slot(20, hours=2))
        for customer_id in customers[:2]:
            await loop.dj_move_deal(customer_id, "Proposal Sent")
        await loop.dj("PATCH", f"/customers/{customers[-1]}", {"last_name": "Renamed"})

    changes = people + scheduled + 1 + min(2, people) + 1
    line, _ = await _measure(loop, name, changes, 0, act)
    line.echo_writes = line.writebacks  # DripJobs' own changes must never come back to it
    return line


async def _both(loop: TwoWay, names: _People, people: int, name: str) -> PhaseLine:
    pairs = max(1, people // 3)
    ghl_people = [names.next("ghl") for _ in range(pairs)]
    dj_people = [names.next("dj") for _ in range(pairs)]

    async def act() -> None:
        jobs = [
            loop.ghl_create_contact(
                firstName=p["first"], lastName=p["last"], email=p["email"], phone=p["phone"]
            )
            for p in ghl_people
        ]
        jobs += [
            loop.dj_create_lead(
                first_name=p["first"], last_name=p["last"], email=p["email"], phone=p["phone"]
            )
            for p in dj_people
        ]
        await asyncio.gather(*jobs)

    line, traffic = await _measure(loop, name, 2 * pairs, pairs, act)
    dj_emails = {p["email"] for p in dj_people}
    echoed = sum(1 for w in traffic.writebacks if w["data"].get("email") in dj_emails)
    line.echo_writes = echoed + max(0, line.writebacks - echoed - pairs)
    return line


async def _finish(loop: TwoWay, summary: TwoWaySummary) -> None:
    counters = await loop.dj_counters()
    ghl = await loop.ghl_state()
    summary.writebacks = dict(counters["by_action"])
    summary.fired = dict(counters["fired"])
    summary.duplicate_webhook_ids = int(counters["duplicate_webhook_ids"])
    summary.duplicates = int(counters["duplicates"]) + duplicate_count(ghl)
    summary.ghl_calls = (await loop.since(loop.origin)).ghl_calls
    summary.problems = agreement_problems(ghl, await loop.dj_state())
    for phase in summary.phases:
        if phase.writebacks < phase.expected_writebacks:
            missing = phase.expected_writebacks - phase.writebacks
            summary.problems.append(f"{phase.name}: {missing} GHL changes never written back")
