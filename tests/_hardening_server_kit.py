"""Helpers for the receiver-hardening tests: configs, a guarded server, raw sockets."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa

from ghlsync.mapping import AppConfig
from ghlsync.server import create_app, serve_in_thread
from ghlsync.server.guard._settings import (
    ConnectionLimits,
    HttpParser,
    ThrottledLog,
    uvicorn_settings,
)

SECRET = "hardening-secret-0123456789"
ADMIN = "admin-token-0123456789"
LOCATION = "loc_hard"
PARSERS: tuple[HttpParser, ...] = ("httptools", "h11")  # the guard runs over either
BEARER = {"Authorization": f"Bearer {SECRET}"}


def config(
    *, secret: str | None = SECRET, location: str | None = LOCATION, **server: Any
) -> AppConfig:
    """The preset with a DripJobs secret, a GHL location and `server:` settings."""
    raw = AppConfig.default().model_dump(mode="python", by_alias=True)
    raw["dripjobs"] = {"secret": secret}
    raw["ghl"] = {"location_id": location}
    raw["server"] = server
    return AppConfig.model_validate(raw)


@contextmanager
def guarded(
    engine: sa.Engine,
    app_config: AppConfig,
    throttle: ThrottledLog | None = None,
    *,
    parser: HttpParser,
) -> Iterator[str]:
    """The app served under uvicorn with the limits `ghlsync serve` applies, over `parser`;
    yields its URL."""
    limits = ConnectionLimits.from_settings(app_config.server)
    app = create_app(engine=engine, config=app_config)
    with serve_in_thread(app, **uvicorn_settings(limits, throttle, parser=parser)) as url:
        yield url


def connect(url: str, data: bytes = b"", *, timeout: float = 5.0) -> socket.socket:
    """A raw TCP connection to `url` that has sent `data` (and nothing more)."""
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=timeout)
    if data:
        sock.sendall(data)
    return sock


def read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (b"" if it just closes)."""
    chunks = []
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    sock.close()
    return b"".join(chunks)


def read_response(sock: socket.socket) -> bytes:
    """One whole answer (head and Content-Length body), leaving the connection open."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def status_and_json(raw: bytes) -> tuple[int, dict[str, Any]]:
    """The status code and JSON body of a raw HTTP/1.1 answer."""
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    found: dict[str, Any] = json.loads(body)
    return status, found
