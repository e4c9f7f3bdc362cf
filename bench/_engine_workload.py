"""The engine benchmark's events, and its HTTP load generator (run as a separate process).

Every timed event changes exactly one entity that nothing else in the run touches, so one
event is one change, and its GHL write carries a marker `mk<i>x` (in the email, the city,
the task title, the note body or the appointment title) that ties the write to the event.
Per 10 events: 3 `lead.created` (a new contact: upsert + tags, 2 calls; one create call where
the instant GHL says its location refuses duplicates, `refuses_duplicates`), 2
`customer.updated` (a changed city of a contact synced before the run: 1 `PUT`), 2
`task.created`, 2 `note.created` and 1 `appointment.scheduled` for contacts synced before
the run (1 call each): 13 GHL calls per 10 changes.

    python bench/_engine_workload.py URL OUT --count N --start I --pool P --tag T
        (--rate R | --concurrency C) [--mix mixed|new|updates]

sends events `I .. I+N-1` to the receiver at URL and writes `[i, sent, answered, status]`
per event (times from `time.monotonic()`) as JSON to OUT.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

SECRET = "bench-engine-secret-0123456789abcdef"
BASE_TS = 1_800_000_000
MARKER = re.compile(rb"mk(\d+)x")


@dataclass(frozen=True, slots=True)
class Event:
    """One DripJobs delivery as a Zap would POST it."""

    name: str
    payload: dict[str, Any]


def pool_event(k: int, tag: str) -> Event:
    """`lead.created` of pool customer k (synced before the timed part)."""
    return Event(
        "lead.created",
        {
            "delivery_id": f"{tag}-pool-{k}",
            "customer_id": f"p{k}",
            "first_name": "Ava",
            "last_name": f"Pool{k}",
            "email": f"pool{k}@bench.example",
            "phone": "(512) 555-0100",
            "city": "Austin",
            "lead_source": "Google",
            "updated_at": BASE_TS,
        },
    )


MIXES = ("mixed", "new", "updates")


def pool_size(count: int, start: int = 0, mix: str = "mixed") -> int:
    """Pool customers needed so each `customer.updated` of events < start+count is distinct."""
    if mix == "updates":
        return start + count + 10
    return 2 * ((start + count) // 10 + 1) + 10


def timed_event(i: int, pool: int, tag: str, mix: str = "mixed") -> Event:
    """Event i of the timed part: the module docstring's `mixed` events, or every one a new
    customer (`new`: one upsert + tags each) or a changed city (`updates`: one `PUT` each)."""
    slot, mark = i % 10, f"mk{i}x"
    base = {"delivery_id": f"{tag}-{i}", "updated_at": BASE_TS + 1 + i}
    if mix == "updates":
        return Event("customer.updated", {**base, "customer_id": f"p{i}", "city": f"{mark} City"})
    if slot < 3 or mix == "new":
        return Event("lead.created", {**base, **_new_customer(i, mark)})
    if slot < 5:
        customer = 2 * (i // 10) + slot - 3
        return Event(
            "customer.updated", {**base, "customer_id": f"p{customer}", "city": f"{mark} City"}
        )
    parent = {"customer_id": f"p{(i * 7919) % pool}"}
    if slot < 7:
        return Event("task.created", {**base, **parent, "task_id": f"t{i}", "task_title": mark})
    if slot < 9:
        return Event("note.created", {**base, **parent, "note_id": f"n{i}", "note_body": mark})
    start = f"2027-01-{1 + i % 28:02d}T{8 + i % 10:02d}:00:00-05:00"
    return Event(
        "appointment.scheduled",
        {
            **base,
            **parent,
            "appointment_id": f"a{i}",
            "appointment_title": mark,
            "appointment_start": start,
        },
    )


def _new_customer(i: int, mark: str) -> dict[str, Any]:
    return {
        "customer_id": f"n{i}",
        "first_name": "Ben",
        "last_name": f"New{i}",
        "email": f"{mark}@bench.example",
        "phone": "(512) 555-0199",
        "lead_source": "Google",
    }


def request_bytes(host: str, event: Event) -> bytes:
    """The raw HTTP/1.1 request a Zap would send for `event`."""
    body = json.dumps(event.payload).encode()
    head = (
        f"POST /hooks/dripjobs/{event.name} HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: Bearer {SECRET}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class _Connection:
    """One keep-alive HTTP/1.1 connection (raw asyncio: an HTTP client would cost the
    generator more CPU than the server under test spends)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def send(self, request: bytes) -> tuple[float, float, int]:
        sent = time.monotonic()
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        await self.reader.readexactly(length)
        return sent, time.monotonic(), int(head[9:12])


async def _connect(url: str, n: int) -> list[_Connection]:
    parts = urlsplit(url)
    pairs = [await asyncio.open_connection(parts.hostname, parts.port) for _ in range(n)]
    return [_Connection(r, w) for r, w in pairs]


async def flood(url: str, requests: list[tuple[int, bytes]], concurrency: int) -> list[Any]:
    """Send every request as fast as `concurrency` connections allow."""
    conns, queue, out = await _connect(url, concurrency), list(reversed(requests)), []

    async def one(conn: _Connection) -> None:
        while queue:
            i, request = queue.pop()
            out.append([i, *await conn.send(request)])

    await asyncio.gather(*(one(c) for c in conns))
    return out


async def paced(url: str, requests: Iterable[tuple[int, bytes]], rate: float) -> list[Any]:
    """Start request k at `t0 + k / rate` (open loop), on any free connection; when all 32
    are busy the schedule waits for one (a server that falls behind sees the rate it keeps
    up with, reported by the caller, instead of an ever longer line of waiting requests)."""
    pool: asyncio.Queue[_Connection] = asyncio.Queue()
    for conn in await _connect(url, 32):
        pool.put_nowait(conn)
    out: list[Any] = []

    async def one(conn: _Connection, i: int, request: bytes) -> None:
        out.append([i, *await conn.send(request)])
        pool.put_nowait(conn)

    tasks: set[asyncio.Task[None]] = set()
    t0 = time.monotonic() + 0.05
    for k, (i, request) in enumerate(requests):
        await asyncio.sleep(max(0.0, t0 + k / rate - time.monotonic()))
        task = asyncio.create_task(one(await pool.get(), i, request))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    await asyncio.gather(*tasks)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description="the engine benchmark's load generator")
    parser.add_argument("url")
    parser.add_argument("out")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--pool", type=int, required=True)
    parser.add_argument("--tag", required=True)
    parser.add_argument("--rate", type=float)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--mix", choices=MIXES, default="mixed")
    args = parser.parse_args()
    host = urlsplit(args.url).netloc
    requests = (
        (i, request_bytes(host, timed_event(i, args.pool, args.tag, args.mix)))
        for i in range(args.start, args.start + args.count)
    )  # made as they are sent: a long soak does not hold them all
    if args.rate:
        out = asyncio.run(paced(args.url, requests, args.rate))
    else:
        out = asyncio.run(flood(args.url, list(requests), args.concurrency))
    with open(args.out, "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
