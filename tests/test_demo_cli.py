"""`ghlsync demo` as users run it: the table, the verdict, the exit code."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from ghlsync.cli import app
from ghlsync.demo._report import VERIFIED


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """The demo quiets the client's warnings; put the level back for other tests."""
    logger = logging.getLogger("ghlsync")
    level = logger.level
    yield
    logger.setLevel(level)


def test_demo_prints_the_table_and_the_verdict() -> None:
    result = CliRunner().invoke(app, ["demo", "--customers", "10"])

    assert result.exit_code == 0, result.output
    for words in ("contacts", "tasks", "notes", "appointments", "created", "GHL API calls"):
        assert words in result.output
    assert (
        "dead letter (planted on purpose): contact cust-00011" in result.output
    )  # the unmappable email
    assert VERIFIED in result.output


def test_demo_json_summary_has_the_counts() -> None:
    result = CliRunner().invoke(app, ["demo", "--customers", "5", "--seed", "3", "--json"])

    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout[result.stdout.index("{") :])
    assert summary["ok"] is True and summary["problems"] == []
    assert summary["outcomes"]["contact"]["created"] == 5
    assert summary["answers"]["404"] == 1 and summary["answers"]["400"] == 2
    assert len(summary["dead_letters"]) == 1


@pytest.mark.parametrize("faults", ["{not json", '{"429": "lots"}', "[0.1]"])
def test_demo_refuses_bad_faults(faults: str) -> None:
    result = CliRunner().invoke(app, ["demo", "--faults", faults])

    assert result.exit_code == 2
    assert "--faults" in result.output
