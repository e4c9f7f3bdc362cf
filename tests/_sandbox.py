"""Sandbox fixtures: a real uvicorn server on loopback, and an in-process ASGI variant."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx2
import pytest
from fastapi import FastAPI

from ghlsync.sandbox import (
    DEFAULT_CALENDAR_ID,
    DEFAULT_LOCATION_ID,
    DEFAULT_TOKEN,
    SandboxServer,
    SandboxState,
    create_app,
    running_sandbox,
)

GHL_BASE_URL = "https://services.leadconnectorhq.com"

__all__ = ["InProcessSandbox", "running_sandbox", "sandbox", "sandbox_asgi"]


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    """A started sandbox server: `.url`, `.state`, `.location_id`, `.token`, `.calendar_id`."""
    server = SandboxServer().start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class InProcessSandbox:
    """The sandbox app without a socket; clients talk to it through `httpx2.ASGITransport`."""

    state: SandboxState = field(default_factory=SandboxState)
    location_id: str = DEFAULT_LOCATION_ID
    token: str = DEFAULT_TOKEN
    calendar_id: str = DEFAULT_CALENDAR_ID
    url: str = GHL_BASE_URL
    app: FastAPI = field(init=False)

    def __post_init__(self) -> None:
        self.app = create_app(self.state)

    def transport(self) -> httpx2.ASGITransport:
        """A transport that calls the app in process (hand it to the GHL client)."""
        return httpx2.ASGITransport(app=self.app)

    def client(
        self, version: str | None = "2021-07-28", token: str | None = None
    ) -> httpx2.AsyncClient:
        """An AsyncClient with the bearer token and Version header set."""
        headers = {"Authorization": f"Bearer {token or self.token}"}
        if version:
            headers["Version"] = version
        return httpx2.AsyncClient(transport=self.transport(), base_url=self.url, headers=headers)


@pytest.fixture
def sandbox_asgi() -> InProcessSandbox:
    """A fresh in-process sandbox (fast; no server thread)."""
    return InProcessSandbox()
