"""Serve the sandbox with uvicorn on loopback in a background thread (tests, bench, demo)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from ghlsync.sandbox._app import create_app
from ghlsync.sandbox._state import (
    DEFAULT_CALENDAR_ID,
    DEFAULT_LOCATION_ID,
    DEFAULT_TOKEN,
    SandboxState,
)
from ghlsync.sandbox.dripjobs import DripJobsState


class SandboxServer:
    """A real HTTP sandbox on `host:port` (port 0 picks a free one); `start()` then `stop()`."""

    location_id = DEFAULT_LOCATION_ID
    token = DEFAULT_TOKEN
    calendar_id = DEFAULT_CALENDAR_ID

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        state: SandboxState | None = None,
        dripjobs: DripJobsState | None = None,
        **opts: Any,
    ) -> None:
        self.state = state or SandboxState(**opts)
        self.dripjobs = dripjobs  # the DripJobs emulator's state, served under /dripjobs/
        self.app = create_app(self.state, dripjobs=dripjobs)
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted connections inherit this on Linux. Without it an answer's head and body wait
        # on each other (Nagle against the client's delayed ACK): ~45 ms per call, not ~5 ms.
        self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._socket.bind((host, port))
        self.host, self.port = self._socket.getsockname()[:2]
        config = uvicorn.Config(
            self.app, log_level="warning", access_log=False, lifespan="off", timeout_keep_alive=30
        )
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL, e.g. `http://127.0.0.1:54321` (no trailing slash)."""
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> SandboxServer:
        """Serve in a daemon thread; return once it accepts connections."""
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._socket]},
            daemon=True,
            name=f"ghl-sandbox-{self.port}",
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.005)
        if not self._server.started:
            self.stop()
            raise RuntimeError(f"sandbox did not start on {self.url}")
        return self

    def stop(self) -> None:
        """Stop serving and wait for the thread to end."""
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._socket.close()

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextmanager
def running_sandbox(host: str = "127.0.0.1", port: int = 0, **opts: Any) -> Iterator[SandboxServer]:
    """`with running_sandbox(burst=10) as sb: ... sb.url ...`"""
    server = SandboxServer(host, port, **opts)
    server.start()
    try:
        yield server
    finally:
        server.stop()
