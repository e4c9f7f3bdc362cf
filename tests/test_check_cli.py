"""Issue 12 §3: `ghlsync check`, the go-live preflight, against a real sandbox on loopback.

`init --sandbox URL` then `check` passes on a fresh machine; each broken thing is one ✗ line
with its fix and exit 1; against GHL itself (not a sandbox) the write paths are a dry run."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import httpx2
import pytest
import typer
import yaml
from typer.testing import CliRunner, Result

from ghlsync._secret import Secret
from ghlsync.cli import _check, _mapping
from ghlsync.mapping import load_config
from ghlsync.preflight import CHECKS, Credentials, required_scopes, run_checks
from ghlsync.sandbox import SandboxServer

_CLEAN = {
    "GHLSYNC_ENV": "",
    "GHLSYNC_CONFIG": "",
    "GHLSYNC_GHL_TOKEN": "",
    "GHLSYNC_GHL_LOCATION_ID": "",
    "GHLSYNC_GHL_CLIENT_ID": "",
    "GHLSYNC_DRIPJOBS_SECRET": "",
    "GHLSYNC_DATABASE_URL": "",
}


# init and check only: this area's commands (the full app registers `check` the same way).
app = typer.Typer()
_mapping.register(app)
_check.register(app)


def _run(*args: str, **env: str) -> Result:
    return CliRunner().invoke(app, list(args), env={**_CLEAN, **env})


@pytest.fixture
def fresh(tmp_path: Path, sandbox: SandboxServer) -> Path:
    """A config written by `init --sandbox URL` in an empty folder."""
    path = tmp_path / "ghlsync.yaml"
    assert _run("init", "--sandbox", sandbox.url, "--path", str(path)).exit_code == 0
    return path


def _edit(path: Path, **sandbox_keys: object) -> None:
    """Set keys of the file (top level) and of the sandbox environment's ghl:."""
    raw = yaml.safe_load(path.read_text())
    ghl = sandbox_keys.pop("ghl", None)
    raw.update(sandbox_keys)
    if isinstance(ghl, dict):
        raw["environments"]["sandbox"]["ghl"].update(ghl)
    path.write_text(yaml.safe_dump(raw))


def test_init_sandbox_then_check_passes_on_a_fresh_machine(
    fresh: Path, sandbox: SandboxServer
) -> None:
    result = _run("check", "--config", str(fresh))

    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line[:1] in "✓✗"]
    assert lines and all(line.startswith("✓") for line in lines)
    assert "READY: all" in result.output and "(environment sandbox)" in result.output
    for name in ("token", "scopes", "calendar", "webhook key", "write contact", "write task"):
        assert f"✓ {name}:" in result.output
    # The write paths were tested for real: one sample contact, task, note and appointment.
    location = sandbox.state.location(sandbox.location_id)
    assert location is not None
    emails = [c.get("email") for c in location.contacts.values()]
    assert emails == ["ghlsync-check@example.com"]
    assert len(location.tasks) == 1 and len(location.notes) == 1
    assert len(location.appointments) == 1
    assert not (fresh.parent / "ghlsync-sandbox.db").exists()  # a throwaway store was used


def test_json_lines_and_exit_1_for_production_on_a_fresh_machine(fresh: Path) -> None:
    result = _run("check", "--config", str(fresh), "--env", "production", "--json")

    assert result.exit_code == 1
    answer = json.loads(result.stdout)
    assert answer["environment"] == "production" and answer["ok"] is False
    token = next(c for c in answer["checks"] if c["check"] == "token")
    assert token["ok"] is False and "GHLSYNC_GHL_TOKEN" in token["fix"]
    writes = [c for c in answer["checks"] if c["check"].startswith("write ")]
    assert writes and all(c["ok"] and "dry run" in c["message"] for c in writes)
    assert all("nothing sent" in c["message"] for c in writes)


def test_a_refused_token_is_one_line_with_the_fix(fresh: Path) -> None:
    _edit(fresh, ghl={"token": "not-a-token"})
    result = _run("check", "--config", str(fresh))

    assert result.exit_code == 1
    assert "✗ token: token refused for loc_sandbox" in result.output
    assert "fix: GHL does not accept the token" in result.output
    assert "NOT READY" in result.output


def test_every_name_the_mapping_uses_must_exist_in_ghl(fresh: Path) -> None:
    _edit(
        fresh,
        custom_fields={"roof": "contact.roof_type"},
        users={"Jane Roe": "user-that-is-not-there"},
        opportunities={
            "deal_pipeline": "Sales pipeline",
            "deal_stages": {"Proposal Sent": "No such stage"},
        },
        ghl={"calendar_id": "cal_missing"},
    )
    result = _run("check", "--config", str(fresh))
    out = result.output

    assert result.exit_code == 1
    assert "✗ custom fields: contact.roof_type (custom_fields.roof) is not a custom" in out
    assert "✗ users: users.Jane Roe: user-that-is-not-there is not in the location" in out
    assert "✗ pipelines: opportunities.deal_pipeline: pipeline 'Sales pipeline' has no stage" in out
    assert "✗ calendar: ghl.calendar_id: cal_missing is not in the location" in out
    assert out.count("fix:") >= 4


class _CatchHook(http.server.BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, dict[str, str]]]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length", "0"))
        self.rfile.read(length)
        self.received.append(("POST", dict(self.headers)))
        self.send_response(200)
        self.end_headers()

    def do_HEAD(self) -> None:
        self.received.append(("HEAD", dict(self.headers)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def catch_hook() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _CatchHook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hooks/catch/1/abc"
    finally:
        server.shutdown()
        server.server_close()


def test_write_back_urls_get_a_signed_test_in_the_sandbox_and_a_dead_one_fails(
    fresh: Path, catch_hook: str
) -> None:
    _CatchHook.received.clear()
    _edit(
        fresh,
        writeback={
            "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "actions": {
                "create_lead": {"url": catch_hook},
                "move_deal": {"url": "http://127.0.0.1:9/nothing-listens"},
            },
        },
    )
    result = _run("check", "--config", str(fresh))

    assert result.exit_code == 1
    assert "✓ write-back: create_lead: test write-back accepted (200)" in result.output
    assert "✗ write-back: move_deal: http://127.0.0.1:9/nothing-listens does not answer" in (
        result.output
    )
    [(method, headers)] = _CatchHook.received
    assert method == "POST" and headers["webhook-signature"].startswith("v1,")


async def test_stored_scopes_short_of_the_flows_fail(fresh: Path, sandbox: SandboxServer) -> None:
    config = load_config(fresh, environ={})
    credentials = Credentials(Secret(sandbox.token), scopes="contacts.readonly contacts.write")

    lines = await run_checks(config, credentials=credentials)

    [scopes] = [line for line in lines if line.check == "scopes"]
    assert not scopes.ok
    assert "calendars/events.write" in scopes.message and "locations.readonly" in scopes.message
    assert scopes.fix is not None and "auth login" in scopes.fix
    assert "calendars/events.write" in required_scopes(config)


def test_checks_are_one_list_in_print_order() -> None:
    names = [check.__name__ for check in CHECKS]
    assert names[:2] == ["check_config", "check_token"] and names[-1] == "check_write_paths"


def test_preflight_exports() -> None:
    import ghlsync.preflight

    assert ghlsync.preflight.__all__ == [
        "CHECKS",
        "Check",
        "CheckLine",
        "Credentials",
        "Preflight",
        "required_scopes",
        "run_checks",
    ]


def test_the_ghlsync_command_has_check() -> None:
    from ghlsync.cli import app as ghlsync

    result = CliRunner().invoke(ghlsync, ["check", "--help"], env=_CLEAN)

    assert result.exit_code == 0
    assert "--env" in result.output and "--json" in result.output


def test_what_the_recipes_name_must_exist_in_ghl_too(fresh: Path) -> None:
    raw = yaml.safe_load(fresh.read_text())
    raw["recipes"] = [
        {
            "name": "new-lead",
            "when": {"trigger": "dripjobs.lead.created"},
            "do": [
                {"add_to_workflow": {"workflow": "New lead nurture"}},
                {"add_to_workflow": {"workflow": "No such workflow"}},
                {"move_opportunity": {"pipeline": "Sales pipeline", "stage": "Nowhere"}},
                {"create_task": {"title": "Call {first_name}", "due": "+0d", "assign": "{x}"}},
            ],
        }
    ]
    fresh.write_text(yaml.safe_dump(raw))
    result = _run("check", "--config", str(fresh))
    out = result.output

    assert result.exit_code == 1
    assert "✓ workflows: recipe new-lead: workflow 'New lead nurture' exists" in out
    assert "✗ workflows: recipe new-lead: No such workflow is not in the location" in out
    assert "✗ pipelines: recipe new-lead: pipeline 'Sales pipeline' has no stage 'Nowhere'" in out
    assert "{x}" not in out  # filled in per event: not checkable before it runs


def test_another_location_is_checked_with_the_token_stored_for_it(
    fresh: Path, sandbox: SandboxServer
) -> None:
    from ghlsync.ghl._crypto import TokenCipher, generate_key
    from ghlsync.ghl._vault import TokenVault
    from ghlsync.store import create_engine, migrate

    made = httpx2.post(f"{sandbox.url}/_sandbox/locations", json={"id": "loc_second"}).json()
    key = generate_key()
    engine = create_engine(f"sqlite:///{fresh.parent / 'ghlsync-sandbox.db'}")  # the env's store
    migrate(engine)
    TokenVault(engine, TokenCipher([key])).save_private("loc_second", Secret(made["token"]))
    engine.dispose()

    result = _run(
        "check", "--config", str(fresh), "--location", "loc_second", GHLSYNC_SECRET_KEY=key
    )
    unknown = _run(
        "check", "--config", str(fresh), "--location", "loc_none", GHLSYNC_SECRET_KEY=key
    )

    assert "✓ token: token accepted for location loc_second" in result.output, result.output
    # Its own calendar, not the configured location's: none stored for it yet.
    assert "✗ calendar: no ghl.calendar_id" in result.output
    assert unknown.exit_code == 1 and "✗ token:" in unknown.output


def test_against_ghl_itself_a_write_back_url_only_gets_a_head(fresh: Path, catch_hook: str) -> None:
    import asyncio

    from ghlsync.preflight._write_checks import check_writeback_urls

    _CatchHook.received.clear()
    _edit(fresh, writeback={"actions": {"create_lead": {"url": catch_hook}}})
    config = load_config(fresh, environ={"GHLSYNC_ENV": "production"})

    lines = asyncio.run(run_checks(config, checks=[check_writeback_urls]))

    assert [(line.ok, line.message) for line in lines][1] == (
        True,
        f"create_lead: {catch_hook} answers (HEAD 200; no Zap run)",
    )
    assert not lines[0].ok  # no writeback.secret: unsigned write-backs are a failure
    assert [method for method, _ in _CatchHook.received] == ["HEAD"]  # no test POST
