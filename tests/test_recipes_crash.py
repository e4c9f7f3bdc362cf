"""A real `ghlsync worker` is SIGKILLed after its recipe's first create_task reached GHL (the
sandbox made the task) and before it recorded it. The next worker finds that task by the
step's pending row instead of creating a second one: the onboarding ends with exactly its two
tasks, one tag and one workflow enrolment."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx2
import sqlalchemy as sa
import yaml

from ghlsync.mapping import AppConfig
from ghlsync.mapping._load import preset_text
from ghlsync.sandbox import SandboxServer
from ghlsync.store import begin_immediate, create_engine, migrate
from ghlsync.store._tables_engine import work_items
from tests._recipes_kit import LEAD, ONBOARDING, deliver
from tests._robust_kit import CLI_WORKER, WorkerProcess, wait_until


class KillingProxy:
    """Forwards every request to the sandbox; the first task create is forwarded (GHL makes
    the task) and then the worker that sent it is killed before it gets the answer."""

    def __init__(self, upstream: str) -> None:
        self.victim: WorkerProcess | None = None
        self.killed = threading.Event()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _forward(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                answer = httpx2.request(
                    self.command, upstream + self.path, headers=headers, content=body
                )
                first = not proxy.killed.is_set() and proxy.victim is not None
                if first and self.command == "POST" and self.path.endswith("/tasks"):
                    proxy.killed.set()
                    assert proxy.victim is not None
                    proxy.victim.kill()  # the task exists in GHL; its id never arrives
                    return
                self.send_response(answer.status_code)
                for key, value in answer.headers.items():
                    if key.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(key, value)
                self.send_header("content-length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            do_GET = do_POST = do_PUT = do_DELETE = _forward

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def _recipe_rows(engine: sa.Engine) -> list[str]:
    with engine.connect() as conn:
        query = sa.select(work_items.c.status).where(work_items.c.entity_type == "recipe")
        return [str(s) for s in conn.execute(query).scalars()]


async def test_sigkill_between_create_task_and_record_makes_no_second_task(
    database_url: str, tmp_path: Path
) -> None:
    engine = create_engine(database_url)
    migrate(engine)
    sandbox = SandboxServer().start()
    proxy = KillingProxy(sandbox.url)
    raw = yaml.safe_load(preset_text())
    raw["recipes"] = [ONBOARDING]
    raw["worker"] = {**raw.get("worker", {}), "poll_interval": 0.05}
    config_file = tmp_path / "ghlsync.yaml"
    config_file.write_text(yaml.safe_dump(raw, sort_keys=False))
    config = AppConfig.default().model_copy(update={"recipes": [ONBOARDING]})
    deliver(engine, config, sandbox.location_id, "d1", "lead.created", **LEAD)
    env = {
        "GHLSYNC_CONFIG": str(config_file),
        "GHLSYNC_DATABASE_URL": database_url,
        "GHLSYNC_GHL_BASE_URL": proxy.url,
        "GHLSYNC_GHL_TOKEN": sandbox.token,
        "GHLSYNC_GHL_LOCATION_ID": sandbox.location_id,
        "GHLSYNC_GHL_CALENDAR_ID": sandbox.calendar_id,
    }
    location = sandbox.state.location(sandbox.location_id)
    assert location is not None
    try:
        first = WorkerProcess(CLI_WORKER, env, tmp_path / "w1.log")
        proxy.victim = first
        await wait_until(lambda: not first.alive(), seconds=90, what="the first worker killed")
        assert [t["title"] for t in location.tasks.values()] == ["Call Ann within 5 minutes"]
        with begin_immediate(engine) as conn:  # its leases run out (time passes)
            conn.execute(sa.update(work_items).values(lease_expires_at=0.0))
        second = WorkerProcess(CLI_WORKER, env, tmp_path / "w2.log")
        try:
            await wait_until(
                lambda: _recipe_rows(engine) == ["done"], seconds=90, what="the recipe run done"
            )
        finally:
            second.stop()
        assert sorted(t["title"] for t in location.tasks.values()) == [
            "Call Ann within 5 minutes",
            "Send estimate",
        ], second.output()
        [contact] = location.contacts.values()
        assert "new-lead" in contact["tags"]
        enrolments = [r for r in list(sandbox.state.requests) if "/workflow/" in r["path"]]
        assert [r["method"] for r in enrolments] == ["POST"]
    finally:
        proxy.server.shutdown()
        proxy.server.server_close()
        sandbox.stop()
        engine.dispose()
