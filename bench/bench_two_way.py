"""Two-way: write-backs per GHL change, echo writes, and GHL event → write-back POST latency.

    python bench/bench_two_way.py                        # SQLite and PostgreSQL, writes docs
    python bench/bench_two_way.py --db sqlite --contacts 40 --no-write

The whole loop runs on loopback (`ghlsync.demo._twoway.TwoWay`): the GHL sandbox, ghlsync's
receiver and worker (with its outbox sender) as `ghlsync serve` runs them, and the DripJobs
emulator behind the write-back URLs. A GHL user works through the GHL API at a steady rate
(open loop): contacts created, then appointments booked for half of them, then a quarter of
those moved. Per change, the latency runs from the moment the GHL API answered (the sandbox
has queued its webhook by then) to the moment the emulator received the matching write-back
(`create_lead` by `ghl_contact_id`, `create_appointment_request` / `update_appointment` by
`ghl_appointment_id`); both are `time.time()` in this one process. Then a DripJobs user
creates leads. Echo writes = GHL writes ghlsync made while only GHL changed, plus write-backs
while only DripJobs changed, plus surplus write-backs. Duplicates = leads or appointments
that exist twice on either side. With `--write` the table goes into docs/benchmarks.md
under "Two-way".
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import platform
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from ghlsync.demo import PipelineOptions
from ghlsync.demo._twoway import TwoWay
from ghlsync.demo._twoway_agree import duplicate_count

BEGIN, END = "<!-- twoway:run -->", "<!-- /twoway:run -->"
DOCS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
PG_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
_ZONE = timezone(timedelta(hours=-5))


@dataclass
class Change:
    """One GHL change and when its write-back arrived."""

    kind: str  # create_lead | create_appointment_request | update_appointment
    ghl_id: str
    at: float
    arrived: float | None = None


@dataclass
class Result:
    """One store's figures."""

    store: str
    changes: list[Change] = field(default_factory=list)
    writebacks: int = 0
    echo_writes: int = 0
    duplicates: int = 0
    dripjobs_leads: int = 0
    seconds: float = 0.0

    def latencies_ms(self) -> list[float]:
        return sorted((c.arrived - c.at) * 1000 for c in self.changes if c.arrived is not None)

    def missing(self) -> int:
        return sum(1 for c in self.changes if c.arrived is None)


async def _paced(rate: float, jobs: list[Any]) -> list[Any]:
    """Run the coroutine factories one by one at `rate` per second (open loop)."""
    start = time.monotonic()
    results = []
    for i, job in enumerate(jobs):
        await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
        results.append(await job())
    return results


def _slot(i: int, hours: int = 0) -> tuple[str, str]:
    start = datetime(2031, 4, 7, 9, tzinfo=_ZONE) + timedelta(days=i, hours=hours)
    return start.isoformat(), (start + timedelta(hours=1)).isoformat()


async def _ghl_changes(loop: TwoWay, contacts: int, rate: float) -> list[Change]:
    changes: list[Change] = []

    def contact(i: int) -> Any:
        async def job() -> None:
            ghl_id = await loop.ghl_create_contact(
                firstName=f"Bench{i}", email=f"bench{i}@example.com", phone=f"+1512555{3000 + i}"
            )
            changes.append(Change("create_lead", ghl_id, time.time()))

        return job

    def book(i: int, contact_id: str) -> Any:
        async def job() -> None:
            ghl_id = await loop.ghl_book(contact_id, *_slot(i), "Estimate")
            changes.append(Change("create_appointment_request", ghl_id, time.time()))

        return job

    def move(i: int, appointment_id: str) -> Any:
        async def job() -> None:
            await loop.ghl_reschedule(appointment_id, *_slot(i, hours=4))
            changes.append(Change("update_appointment", appointment_id, time.time()))

        return job

    await _paced(rate, [contact(i) for i in range(contacts)])
    await loop.quiesce()
    people = [c.ghl_id for c in changes if c.kind == "create_lead"]
    await _paced(rate, [book(i, cid) for i, cid in enumerate(people[: contacts // 2])])
    await loop.quiesce()
    booked = [c.ghl_id for c in changes if c.kind == "create_appointment_request"]
    await _paced(rate, [move(i, aid) for i, aid in enumerate(booked[: contacts // 4])])
    await loop.quiesce()
    return changes


def _match(changes: list[Change], writebacks: list[dict[str, Any]]) -> None:
    """Pair each change with the first write-back for it that arrived after it."""
    for change in changes:
        key = "ghl_contact_id" if change.kind == "create_lead" else "ghl_appointment_id"
        for wb in writebacks:
            same = wb["action"] == change.kind and wb["data"].get(key) == change.ghl_id
            # The API's answer trails its webhook, so a write-back may beat `at` a little.
            if same and wb["received_at"] >= change.at - 0.5:
                change.arrived = wb["received_at"]
                break


async def run_store(store: str, url: str | None, contacts: int, rate: float) -> Result:
    result = Result(store)
    started = time.monotonic()
    async with TwoWay(PipelineOptions(database_url=url, drain_timeout=300)) as loop:
        mark = loop.mark()
        result.changes = await _ghl_changes(loop, contacts, rate)
        traffic = await loop.since(mark)
        _match(result.changes, traffic.writebacks)
        result.writebacks = len(traffic.writebacks)
        result.echo_writes = traffic.ghl_writes + max(0, result.writebacks - len(result.changes))
        mark = loop.mark()
        leads = max(1, contacts // 4)
        for i in range(leads):
            await loop.dj_create_lead(first_name=f"Lead{i}", email=f"lead{i}@example.com")
        await loop.quiesce()
        result.dripjobs_leads = leads
        result.echo_writes += len((await loop.since(mark)).writebacks)
        counters = await loop.dj_counters()
        result.duplicates = int(counters["duplicates"]) + duplicate_count(await loop.ghl_state())
    result.seconds = time.monotonic() - started
    return result


def _fresh_postgres(admin_url: str) -> tuple[str, Any]:
    import uuid

    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"ghlsync_bench_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    url = sa.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    return url, drop


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(q * len(values)))]


def render(results: list[Result], contacts: int, rate: float) -> str:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    lines = [
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {os.cpu_count()} cores (nproc), "
        f"{platform.processor() or platform.machine()}, Python {platform.python_version()}; "
        f"everything in one process (sandbox + emulator, receiver, worker + outbox sender); "
        f"GHL user at {rate:g} changes/s, {contacts} contacts; load average before: {load}.",
        "",
        "| store | GHL changes | write-backs | per change | missing | echo writes | duplicates "
        "| GHL event → write-back p50 | p95 | p99 | max |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lat = r.latencies_ms()
        per = r.writebacks / len(r.changes) if r.changes else 0.0
        lines.append(
            f"| {r.store} | {len(r.changes)} | {r.writebacks} | {per:.2f} | {r.missing()} "
            f"| {r.echo_writes} | {r.duplicates} | {_pct(lat, 0.5):.0f} ms "
            f"| {_pct(lat, 0.95):.0f} ms | {_pct(lat, 0.99):.0f} ms "
            f"| {max(lat, default=0):.0f} ms |"
        )
    return "\n".join(lines)


def write_docs(block: str) -> None:
    text = DOCS.read_text()
    section = f"{BEGIN}\n{block}\n{END}"
    if BEGIN in text:
        head, rest = text.split(BEGIN, 1)
        text = head + section + rest.split(END, 1)[1]
    else:
        text = text.rstrip() + f"\n\n## Two-way\n\n{section}\n"
    DOCS.write_text(text)


async def main(args: argparse.Namespace) -> None:
    results = []
    for store in ("sqlite", "postgresql") if args.db == "both" else (args.db,):
        if store == "sqlite":
            results.append(await run_store(store, None, args.contacts, args.rate))
            continue
        url, drop = _fresh_postgres(os.environ.get("GHLSYNC_TEST_POSTGRES_URL", PG_DEFAULT))
        try:
            results.append(await run_store(store, url, args.contacts, args.rate))
        finally:
            drop()
    block = render(results, args.contacts, args.rate)
    print(block)
    if args.write:
        write_docs(block)
        print(f"\nwritten to {DOCS}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--contacts", type=int, default=80, help="GHL contacts to create")
    parser.add_argument("--rate", type=float, default=10.0, help="GHL changes per second")
    parser.add_argument("--no-write", dest="write", action="store_false")
    logging.getLogger("ghlsync").setLevel(logging.ERROR)
    asyncio.run(main(parser.parse_args()))
