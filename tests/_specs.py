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


@pytest.fixture(scope="session")
def ghl_v3_spec_dir(ghl_spec_dir: Path) -> Path:
    """The same folder, once it also holds GHL's v3 specs (apps/v3/*-v3.json, 2026-06-19)."""
    if not (ghl_spec_dir / "apps" / "v3" / "contacts-v3.json").is_file():
        reason = f"GHL v3 OpenAPI specs not found at {ghl_spec_dir / 'apps' / 'v3'}"
        if os.environ.get("GHLSYNC_REQUIRE_SPECS") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return ghl_spec_dir
