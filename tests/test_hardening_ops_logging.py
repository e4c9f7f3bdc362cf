"""Issue 8, item 13: `serve` and `worker` set up logging themselves (INFO with timestamps,
`--log-level`, `--log-format json` through structlog), and the install line appears."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ghlsync._logging import _Handler, setup_logging
from ghlsync.engine.locations._services import LocationServices
from ghlsync.ghl._crypto import generate_key
from ghlsync.store import create_engine, migrate
from tests._locations_kit import base_config

GHLSYNC = str(Path(sys.executable).parent / "ghlsync")
_TEXT_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \[(\w+)\s*\] (.*)$")


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root, ghl = logging.getLogger(), logging.getLogger("ghlsync.ghl")
    levels = root.level, ghl.level
    yield
    for handler in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(handler)
    root.setLevel(levels[0])
    ghl.setLevel(levels[1])


def test_text_lines_carry_a_timestamp_and_the_level(restore_logging: None) -> None:
    out = io.StringIO()
    setup_logging(stream=out)

    logging.getLogger("ghlsync.engine").info("dead letter: location %s", "loc_1")
    logging.getLogger("ghlsync.engine").debug("not at info")
    logging.getLogger("ghlsync.ghl").info("ghl POST /contacts/ -> 201")  # per-call detail

    [line] = out.getvalue().splitlines()
    found = _TEXT_LINE.match(line)
    assert found is not None, line
    assert found.group(1) == "info" and "dead letter: location loc_1" in found.group(2)


def test_json_lines_and_debug_shows_the_per_call_lines(restore_logging: None) -> None:
    out = io.StringIO()
    setup_logging("debug", "json", stream=out)

    logging.getLogger("ghlsync.ghl").info("ghl %s -> %s", "GET /contacts/", 200, extra={"ms": 4})

    [record] = [json.loads(line) for line in out.getvalue().splitlines()]
    assert record["event"] == "ghl GET /contacts/ -> 200"
    assert (record["level"], record["logger"], record["ms"]) == ("info", "ghlsync.ghl", 4)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", record["timestamp"])


def test_worker_process_logs_json_lines_from_start_to_stop(tmp_path: Path) -> None:
    config = tmp_path / "ghlsync.yaml"
    config.write_text(
        f"database_url: sqlite:///{tmp_path / 'store.db'}\n"
        "ghl: {location_id: loc_1, token: pit-0123456789, base_url: 'http://127.0.0.1:9'}\n"
    )
    config.chmod(0o600)  # (a readable config is warned about on stderr, as plain text)
    env = {**os.environ, "GHLSYNC_SECRET_KEY": generate_key(), "GHLSYNC_DATABASE_URL": ""}
    log = tmp_path / "worker.log"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [GHLSYNC, "worker", "--config", str(config), "--log-format", "json"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        _wait_for(log, "running (SIGTERM/Ctrl-C drains)")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert all({"timestamp", "level", "logger", "event"} <= set(r) for r in records), records
    assert any(r["event"].startswith("worker ") and "stopped after" in r["event"] for r in records)


def _wait_for(log: Path, text: str, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds  # a bound against hanging, not a timing assertion
    while time.monotonic() < deadline:
        if text in log.read_text():
            return
        time.sleep(0.05)
    raise AssertionError(f"never logged {text!r}:\n{log.read_text()}")


async def test_an_install_logs_the_webhook_url_docs_promise(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("GHLSYNC_PUBLIC_URL", "https://sync.example.com/")
    monkeypatch.setenv("GHLSYNC_SECRET_KEY", generate_key())
    engine = create_engine(sqlite_url)
    migrate(engine)
    try:
        services = LocationServices.build(engine, base_config(location_id="loc_a", token="pit"))
        with caplog.at_level(logging.INFO, logger="ghlsync.locations"):
            done = await services.installer.install_location("loc_b")
    finally:
        engine.dispose()

    expected = (
        "GHL installed location loc_b: DripJobs webhook URL "
        f"https://sync.example.com/hooks/dripjobs/{done.connection_id}/<event>"
    )
    assert expected in caplog.messages
