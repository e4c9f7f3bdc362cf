"""DripJobs-emulator helpers: a signed write-back sender, a loopback receiver, polling."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ghlsync.sandbox import SandboxServer
from ghlsync.sandbox.dripjobs import DEFAULT_WRITEBACK_SECRET, DripJobsState
from ghlsync.server import serve_in_thread

_DEADLINE_SECONDS = 20.0


def sign_writeback(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """`webhook-signature` per the Standard Webhooks spec, computed here from scratch."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    content = f"{webhook_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()


def writeback(
    base_url: str,
    action: str,
    data: dict[str, str],
    *,
    webhook_id: str | None = None,
    secret: str = DEFAULT_WRITEBACK_SECRET,
    timestamp: int | None = None,
    timeout: float = 10.0,
) -> httpx2.Response:
    """POST one signed write-back to the emulator's catch hook for `action`."""
    webhook_id = webhook_id or f"wb_{uuid.uuid4().hex}"
    stamp = int(time.time()) if timestamp is None else timestamp
    document = {"type": action, "id": webhook_id, "timestamp": "2026-12-06T00:00:00Z", "data": data}
    body = json.dumps(document).encode()
    headers = {
        "content-type": "application/json",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": sign_writeback(secret, webhook_id, stamp, body),
    }
    url = f"{base_url}/dripjobs/hooks/catch/{action}"
    return httpx2.post(url, content=body, headers=headers, timeout=timeout)


@dataclass
class Received:
    """One trigger delivery the loopback receiver got."""

    event: str
    headers: dict[str, str]
    fields: dict[str, Any]


@dataclass
class LoopbackReceiver:
    """Stands in for ghlsync's `/hooks/dripjobs/<event>`; answers scripted statuses first."""

    script: list[int] = field(default_factory=list)
    retry_after: str | None = None
    gate: threading.Event = field(default_factory=threading.Event)
    received: list[Received] = field(default_factory=list)
    url: str = ""

    def __post_init__(self) -> None:
        self.gate.set()

    def app(self) -> Starlette:
        """The receiving app."""

        async def hook(request: Request) -> Response:
            while not self.gate.is_set():  # a test holds the receiver to prove non-blocking
                await _pause()
            headers = {k.lower(): v for k, v in request.headers.items()}
            self.received.append(
                Received(request.path_params["event"], headers, await request.json())
            )
            status = self.script.pop(0) if self.script else 202
            extra = {"retry-after": self.retry_after} if status == 429 and self.retry_after else {}
            return JSONResponse({"status": status}, status_code=status, headers=extra)

        return Starlette(routes=[Route("/hooks/dripjobs/{event}", hook, methods=["POST"])])


async def _pause() -> None:
    await asyncio.sleep(0.01)


@contextmanager
def emulator_with_receiver(
    receiver: LoopbackReceiver | None = None, **settings: Any
) -> Iterator[tuple[SandboxServer, DripJobsState, LoopbackReceiver]]:
    """A sandbox serving the emulator, its triggers aimed at a loopback receiver."""
    receiver = receiver or LoopbackReceiver()
    state = DripJobsState(seed=1)
    with serve_in_thread(receiver.app(), lifespan="off") as url:
        receiver.url = url
        state.settings.ghlsync_url = url
        state.settings.secret = "receiver-secret"
        state.settings.fire_retry_seconds = 0.01
        for name, value in settings.items():
            setattr(state.settings, name, value)
        with SandboxServer(dripjobs=state) as server:
            yield server, state, receiver


def wait_until(condition: Callable[[], bool], what: str) -> None:
    """Poll until `condition()` holds (a deadline guards a hang; no timing is asserted)."""
    deadline = time.monotonic() + _DEADLINE_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def wait_fired(state: DripJobsState) -> None:
    """Until every fired trigger was settled (delivered, failed or not configured)."""
    wait_until(lambda: state.counters()["fire_pending"] == 0, "fired triggers to settle")
