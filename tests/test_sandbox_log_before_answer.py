"""The sandbox logs a call before the last byte of its answer leaves: a client that reads the
call log (`/_sandbox/requests`) as soon as it has its answer finds the call there (before, the
log was written after the answer, and a quick reader could miss the last call)."""

from __future__ import annotations

from typing import Any

from ghlsync.sandbox._app import create_app
from ghlsync.sandbox._state import SandboxState


async def _call(app: Any, path: str, state: SandboxState) -> list[tuple[int, int]]:
    """Drive one GET through the ASGI app; at each body message, how many calls were logged."""
    seen: list[tuple[int, int]] = []
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            seen.append((int(message["status"]), -1))
        elif message["type"] == "http.response.body" and not message.get("more_body", False):
            status = seen[-1][0]
            seen[-1] = (status, len(state.requests))

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"sandbox"), (b"version", b"2021-07-28")],
        "client": ("127.0.0.1", 1234),
        "server": ("sandbox", 80),
    }
    await app(scope, receive, send)
    return seen


async def test_a_call_is_logged_before_its_answer_ends() -> None:
    state = SandboxState()
    app = create_app(state)
    first = await _call(app, "/contacts/", state)  # no token: the gate answers 401 itself
    second = await _call(app, "/contacts/", state)
    assert [logged for _, logged in first] == [1]
    assert [logged for _, logged in second] == [2]
    assert len(state.requests) == 2  # logged once each, not again when the call ended
