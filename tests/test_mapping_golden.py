"""Snapshot tests: tests/golden/events/*.json → tests/golden/mapped/*.json, compared exactly.

Regenerate after an intended change with `GHLSYNC_UPDATE_GOLDEN=1` and review the diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests._mapping_golden import EVENTS, GOLDEN, golden_mapper, load_event, render


@pytest.mark.parametrize("path", EVENTS, ids=[p.stem for p in EVENTS])
def test_golden(path: Path) -> None:
    event, payload = load_event(path)
    actual = json.dumps(render(golden_mapper(), event, payload), indent=2, ensure_ascii=False)
    expected_path = GOLDEN / "mapped" / path.name
    if os.environ.get("GHLSYNC_UPDATE_GOLDEN") == "1":
        expected_path.write_text(actual + "\n", encoding="utf-8")
    assert expected_path.is_file(), f"no snapshot for {path.name}; run with GHLSYNC_UPDATE_GOLDEN=1"
    assert actual + "\n" == expected_path.read_text(encoding="utf-8")


def test_every_snapshot_has_an_event() -> None:
    mapped = {p.name for p in (GOLDEN / "mapped").glob("*.json")}
    assert mapped == {p.name for p in EVENTS}


def test_the_golden_set_covers_every_preset_event() -> None:
    covered = {load_event(p)[0] for p in EVENTS}
    assert covered >= set(golden_mapper().events)
