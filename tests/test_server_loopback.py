"""Serving on a socket we bind ourselves (tests, the demo, the metrics port, benches)."""

from __future__ import annotations

import socket

import httpx2

from ghlsync.server._thread import bind_loopback, serve_in_thread


async def _app(scope: dict, receive: object, send: object) -> None:  # type: ignore[type-arg]
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})  # type: ignore[operator]
    await send({"type": "http.response.body", "body": b"ok"})  # type: ignore[operator]


def test_accepted_connections_send_without_waiting_for_acks() -> None:
    """asyncio sets TCP_NODELAY only on sockets it creates; a socket handed to uvicorn must
    carry it itself (accepted connections inherit it), or each answer on a kept-alive
    connection waits ~45 ms for the client's delayed ACK between its head and its body."""
    sock = bind_loopback()
    try:
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        client = socket.create_connection(sock.getsockname()[:2])
        accepted, _ = sock.accept()
        assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        accepted.close()
        client.close()
    finally:
        sock.close()


def test_serve_in_thread_answers_on_a_kept_alive_connection() -> None:
    with serve_in_thread(_app) as url, httpx2.Client(base_url=url) as http:
        assert [http.get("/").text for _ in range(3)] == ["ok"] * 3
