"""`ghlsync sandbox` serves the emulator and prints how to reach it."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx2

import ghlsync.sandbox


def test_cli_serves_the_sandbox_with_the_given_limits() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from ghlsync.cli import main; main()",
            "sandbox",
            "--port",
            "0",
            "--burst",
            "5",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        banner = [proc.stdout.readline() for _ in range(4)]
        url = banner[0].split(" on ")[1].strip()
        headers = {"Authorization": "Bearer sandbox-token", "Version": "2021-07-28"}
        response = None
        for _ in range(200):
            try:
                response = httpx2.get(
                    f"{url}/users/", params={"locationId": "loc_sandbox"}, headers=headers
                )
                break
            except httpx2.TransportError:
                time.sleep(0.05)  # uvicorn is still binding; not a timing assertion
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
    assert "loc_sandbox" in banner[1] and "sandbox-token" in banner[2]
    assert "cal_sandbox" in banner[3]
    assert response is not None and response.status_code == 200
    assert response.headers["X-RateLimit-Max"] == "5"


def test_public_names_are_pinned() -> None:
    assert ghlsync.sandbox.__all__ == [
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
