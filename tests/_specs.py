"""Locating GHL's official OpenAPI specs, which live beside the project and are never copied."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def spec_dir() -> Path:
    configured = os.environ.get("GHLSYNC_GHL_SPEC_DIR")
    return Path(configured) if configured else ROOT.parent / "shared" / "ghl-api"


@pytest.fixture(scope="session")
def ghl_spec_dir() -> Path:
    """The folder holding apps/*.json; skip with the reason when it is absent (fail in CI)."""
    path = spec_dir()
    if not (path / "apps" / "contacts.json").is_file():
        reason = f"GHL OpenAPI specs not found at {path} (set GHLSYNC_GHL_SPEC_DIR)"
        if os.environ.get("GHLSYNC_REQUIRE_SPECS") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return path
