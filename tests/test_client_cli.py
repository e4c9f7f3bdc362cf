"""`ghlsync call` against a real HTTP server on loopback."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest
from typer.testing import CliRunner

from ghlsync.cli import app

TOKEN = "pit-cli-test-token-123456"


class _Handler(BaseHTTPRequestHandler):
    seen: ClassVar[list[dict[str, Any]]] = []

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        _Handler.seen.append(
            {"method": self.command, "path": self.path, "headers": dict(self.headers), "body": body}
        )
        payload: dict[str, Any]
        status, payload = 200, {"contact": {"id": "c1", "email": "a@x.io"}}
        if self.path.startswith("/contacts/missing"):
            status, payload = 404, {"message": "Contact not found", "traceId": "tr-404"}
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-RateLimit-Max", "100")
        self.send_header("X-RateLimit-Remaining", "99")
        self.send_header("X-RateLimit-Interval-Milliseconds", "10000")
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_DELETE = _answer

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the test output quiet."""


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    _Handler.seen = []
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def _run(*args: str, **env: str) -> Any:
    return CliRunner().invoke(app, ["call", *args], env=env, catch_exceptions=False)


def test_call_prints_json_and_rate_budget(server: str) -> None:
    result = _run(
        "get-contact",
        "--param",
        "contactId=c1",
        GHLSYNC_GHL_BASE_URL=server,
        GHLSYNC_GHL_TOKEN=TOKEN,
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"contact": {"id": "c1", "email": "a@x.io"}}
    assert "99/100 per 10000 ms" in result.stderr
    sent = _Handler.seen[0]
    assert sent["path"] == "/contacts/c1"
    assert sent["headers"]["Authorization"] == f"Bearer {TOKEN}"
    assert sent["headers"]["Version"] == "2021-07-28"


def test_call_fills_location_into_body_and_query(server: str) -> None:
    body = json.dumps({"email": "a@x.io"})
    args = ("--base-url", server, "--token", TOKEN, "--location", "loc9")
    assert _run("upsert-contact", "--body", body, *args).exit_code == 0
    assert _run("get-contacts", *args).exit_code == 0
    assert json.loads(_Handler.seen[0]["body"]) == {"email": "a@x.io", "locationId": "loc9"}
    assert _Handler.seen[1]["path"] == "/contacts/?locationId=loc9"


def test_call_reports_ghl_error_with_trace_id(server: str) -> None:
    result = _run(
        "delete-contact", "-p", "contactId=missing", "--base-url", server, "--token", TOKEN
    )
    assert result.exit_code == 1
    assert "NotFoundError: Request tr-404:" in result.stderr
    assert TOKEN not in result.output


def test_call_rejects_unknown_field_without_sending(server: str) -> None:
    body = json.dumps({"email": "a@x.io", "bogus": 1})
    result = _run("create-contact", "--body", body, "--base-url", server, "--token", TOKEN)
    assert result.exit_code == 1
    assert "bogus" in result.stderr
    assert _Handler.seen == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("nope", "--token", TOKEN), "unknown operation 'nope'"),
        (("get-contact", "--token", TOKEN), "needs --param contactId"),
        (("get-contact", "-p", "contactId=1"), "no token"),
        (("create-contact", "--token", TOKEN, "--body", "{"), "not valid JSON"),
    ],
)
def test_call_usage_errors_exit_2(args: tuple[str, ...], message: str) -> None:
    result = _run(*args, GHLSYNC_GHL_TOKEN="")
    assert result.exit_code == 2
    assert message in result.stderr


def test_call_list_names_every_operation() -> None:
    result = _run("--list")
    assert result.exit_code == 0
    assert "upsert-contact" in result.stdout
    assert "create-appointment" in result.stdout
    assert "2021-04-15" in result.stdout
