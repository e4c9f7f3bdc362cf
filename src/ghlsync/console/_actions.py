"""The forms (POST): rotate a secret, send a test write-back, replay dead letters, run the
mapping tester. Each answers with the page it was posted from, with a notice."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ghlsync.console import _data, _pages
from ghlsync.console._app import Console
from ghlsync.console._auth import Signed
from ghlsync.console._connections import rotate, send_test
from ghlsync.console._tester import run_tester
from ghlsync.engine.queue._dlq import replay

__all__ = ["routes"]


def routes(console: Console) -> list[Route]:
    """The POST routes, each behind the sign-in and the CSRF check."""
    forms = {
        "/connections/{connection_id}/rotate": rotate_secret,
        "/writeback/{action}/test": test_writeback,
        "/dead-letters/{letter_id:int}/replay": replay_one,
        "/dead-letters/replay": replay_matching,
        "/tester": run,
        "/tester/sandbox": send_sandbox,
    }
    return [
        Route(path, console.signed(handler), methods=["POST"]) for path, handler in forms.items()
    ]


async def rotate_secret(console: Console, request: Request, signed: Signed) -> Response:
    """A new secret for the connection, shown once on the answer."""
    from ghlsync.ghl._crypto import SecretKeyError

    connection_id = str(request.path_params["connection_id"])
    try:
        done = await asyncio.to_thread(rotate, console.locations, connection_id)
    except SecretKeyError as exc:
        return await _pages.connections(console, request, signed, error=str(exc))
    if done is None:
        return await _pages.connections(
            console, request, signed, error=f"Connection {connection_id} is not live."
        )
    location, secret = done
    return await _pages.connections(
        console,
        request,
        signed,
        rotated={
            "location_id": location,
            "connection_id": connection_id,
            "secret": secret.reveal(),
        },
    )


async def test_writeback(console: Console, request: Request, signed: Signed) -> Response:
    """POST a signed test body to one write-back URL; say what it answered."""
    result = await send_test(console.config, str(request.path_params["action"]))
    return await _pages.connections(console, request, signed, notice=result)


async def replay_one(console: Console, request: Request, signed: Signed) -> Response:
    """Send one dead letter's entity back to the queue."""
    letter_id = int(request.path_params["letter_id"])
    done = await asyncio.to_thread(replay, console.engine, letter_id, clock=console.clock)
    notice = (
        f"Dead letter {letter_id} is queued again."
        if done
        else f"Dead letter {letter_id} was already replayed."
    )
    return await _pages.dead_letters(console, request, signed, notice=notice)


async def replay_matching(console: Console, request: Request, signed: Signed) -> Response:
    """Replay every unreplayed dead letter the form's filters match."""
    filters = _pages.dead_filters(await request.form())

    def work() -> int:
        ids = _data.matching_dead_ids(console.engine, **filters)
        return sum(replay(console.engine, i, clock=console.clock) for i in ids)

    count = await asyncio.to_thread(work)
    noun = "dead letter" if count == 1 else "dead letters"
    return await _pages.dead_letters(
        console, request, signed, notice=f"{count} {noun} queued again."
    )


async def run(console: Console, request: Request, signed: Signed) -> Response:
    """Map and plan the posted payload; nothing is sent."""
    form = await request.form()
    event = str(form.get("event", "")).strip()
    payload = str(form.get("payload", ""))
    result = await asyncio.to_thread(run_tester, console.config, event, payload)
    return await _pages.tester(
        console, request, signed, result=result, event=event, payload=payload
    )


async def send_sandbox(console: Console, request: Request, signed: Signed) -> Response:
    """Sync the posted payload to the sandbox environment (docs/environments.md)."""
    from ghlsync.console._sandbox_send import send_to_sandbox

    form = await request.form()
    event = str(form.get("event", "")).strip()
    payload = str(form.get("payload", ""))
    sent = await send_to_sandbox(console.config, event, payload)
    return await _pages.tester(console, request, signed, event=event, payload=payload, sent=sent)
