"""A GoHighLevel API v2 emulator for the demo, tests, benchmarks and dry runs.

`create_app()` builds the FastAPI app; `SandboxServer` / `running_sandbox()` serve it with
uvicorn on loopback. See docs/sandbox.md for what it emulates and the `/_sandbox/` admin API.
"""

from ghlsync.sandbox._app import create_app
from ghlsync.sandbox._contacts import normalise_phone
from ghlsync.sandbox._server import SandboxServer, running_sandbox
from ghlsync.sandbox._state import (
    DEFAULT_CALENDAR_ID,
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_COMPANY_ID,
    DEFAULT_LOCATION_ID,
    DEFAULT_TOKEN,
    Faults,
    Limits,
    Location,
    SandboxState,
)

__all__ = [
    "DEFAULT_CALENDAR_ID",
    "DEFAULT_CLIENT_ID",
    "DEFAULT_CLIENT_SECRET",
    "DEFAULT_COMPANY_ID",
    "DEFAULT_LOCATION_ID",
    "DEFAULT_TOKEN",
    "Faults",
    "Limits",
    "Location",
    "SandboxServer",
    "SandboxState",
    "create_app",
    "normalise_phone",
    "running_sandbox",
]
