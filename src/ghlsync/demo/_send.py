"""Deliver a demo stream to the receiver over HTTP, as Zaps would: concurrently across
customers, in order within one customer (a Zap delivers one record's events in sequence)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import httpx2

from ghlsync.demo._stream import DemoEvent

_ID_KEYS = ("customer_id", "Customer ID")
_UNKEYED = "-"  # malformed events carry no customer: one lane of their own

Progress = Callable[[int], None]
"""Called with the number of events just answered (for progress bars)."""


@dataclass(frozen=True, slots=True)
class Answer:
    """What the receiver answered one delivery."""

    index: int  # position in the stream
    event: str
    status: int
    expected: int
    body: str

    @property
    def as_expected(self) -> bool:
        """True when the status is the one the stream says it must be."""
        return self.status == self.expected


def lanes(events: Sequence[DemoEvent], count: int) -> list[list[int]]:
    """Split the stream's indexes into `count` lanes; one customer's events share a lane."""
    out: list[list[int]] = [[] for _ in range(max(1, count))]
    owners: dict[str, int] = {}
    for index, item in enumerate(events):
        key = _customer(item)
        lane = owners.setdefault(key, len(owners) % len(out))
        out[lane].append(index)
    return [lane for lane in out if lane]


def _customer(item: DemoEvent) -> str:
    if isinstance(item.body, dict):
        for name in _ID_KEYS:
            value = item.body.get(name)
            if value:
                return str(value)
    return _UNKEYED


async def send_stream(
    base_url: str,
    secret: str,
    events: Sequence[DemoEvent],
    *,
    concurrency: int = 8,
    http_timeout: float = 30.0,
    progress: Progress | None = None,
) -> list[Answer]:
    """POST every event to `base_url/hooks/dripjobs/<event>`; answers in stream order."""
    answers: list[Answer | None] = [None] * len(events)
    headers = {"Authorization": f"Bearer {secret}"}
    limits = httpx2.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx2.AsyncClient(
        base_url=base_url, headers=headers, timeout=http_timeout, limits=limits
    ) as client:

        async def run_lane(indexes: list[int]) -> None:
            for index in indexes:
                answers[index] = await _post(client, index, events[index])
                if progress is not None:
                    progress(1)

        await asyncio.gather(*(run_lane(lane) for lane in lanes(events, concurrency)))
    return [a for a in answers if a is not None]


async def _post(client: httpx2.AsyncClient, index: int, item: DemoEvent) -> Answer:
    content, content_type = item.content()
    response = await client.post(
        f"/hooks/dripjobs/{item.event}", content=content, headers={"Content-Type": content_type}
    )
    return Answer(index, item.event, response.status_code, item.expect_status, response.text)
