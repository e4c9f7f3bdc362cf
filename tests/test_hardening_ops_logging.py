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
from contextlib import contextmanager
from pathlib import Path

import httpx2
import pytest

from ghlsync._logging import _Handler, setup_logging
from ghlsync.engine.locations._services import LocationServices
from ghlsync.ghl._crypto import TokenCipher, generate_key
from ghlsync.sandbox import SandboxServer
from ghlsync.server import create_app, serve_in_thread
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


def test_an_install_logs_the_public_webhook_url_docs_promise(
    sandbox: SandboxServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("GHLSYNC_PUBLIC_URL", "https://sync.example.com/")
    with (
        _receiver(sandbox, tmp_path) as admin,
        caplog.at_level(logging.INFO, logger="ghlsync.server"),
    ):
        sent = admin.post("/_sandbox/install", json={"locationId": "loc_b"}).json()

    assert sent["delivery"]["status"] == 200, sent
    [line] = [m for m in caplog.messages if m.startswith("GHL installed location loc_b")]
    assert re.fullmatch(
        r"GHL installed location loc_b: DripJobs webhook URL "
        r"https://sync\.example\.com/hooks/dripjobs/dj_\S+/<event>",
        line,
    ), line


@contextmanager
def _receiver(sandbox: SandboxServer, folder: Path) -> Iterator[httpx2.Client]:
    """`/hooks/ghl` of a real receiver, wired as the sandbox's webhook URL."""
    engine = create_engine(f"sqlite:///{folder}/store.db")
    migrate(engine)
    with httpx2.Client(base_url=sandbox.url) as admin:
        config = base_config(webhook_public_key=admin.get("/_sandbox/webhook-public-key").text)
        services = LocationServices.build(engine, config, cipher=TokenCipher([generate_key()]))
        app = create_app(
            engine=engine,
            config=config,
            locations=services.directory,
            installer=services.installer,
        )
        try:
            with serve_in_thread(app) as url:
                admin.put("/_sandbox/webhooks", json={"url": f"{url}/hooks/ghl"})
                yield admin
        finally:
            engine.dispose()


def test_httpx2_request_lines_show_only_at_debug() -> None:
    """httpx2 logs every request (`HTTP Request: POST https://.../contacts/<id>`): at the
    default level that is one line per GHL call with a contact id in it; debug shows it."""
    import io
    import logging

    from ghlsync._logging import setup_logging

    out = io.StringIO()
    setup_logging("info", "text", stream=out)
    logging.getLogger("httpx2").info("HTTP Request: POST https://x/contacts/abc")
    assert "HTTP Request" not in out.getvalue()
    setup_logging("debug", "text", stream=out)
    logging.getLogger("httpx2").info("HTTP Request: POST https://x/contacts/abc")
    assert "HTTP Request" in out.getvalue()
    setup_logging("info", "text")
