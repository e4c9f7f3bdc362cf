"""The outbox's crash test: a real `ghlsync worker` process is SIGKILLed after its write-back
POST reached the catch hook and before it could record the answer. The next worker sends the
same write-back again with the same webhook-id; the receiver dedupes by that id: exactly one
delivery id, applied once, and the outbox row ends delivered."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from ghlsync.engine.outbox._store import enqueue
from ghlsync.store import begin_immediate, create_engine, migrate
from ghlsync.store._tables_twoway import writeback_outbox
from tests._robust_kit import CLI_WORKER, WorkerProcess, wait_until
from tests._twoway_kit import SECRET, spec_verify


class Receiver:
    """A catch hook on loopback. On the first POST it kills the sender (the POST is sent, its
    answer never recorded); later POSTs are answered 200. Dedupes by webhook-id."""

    def __init__(self) -> None:
        self.attempts: list[str] = []
        self.applied: dict[str, Any] = {}
        self.victim: WorkerProcess | None = None
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                headers = {k.lower(): v for k, v in self.headers.items()}
                stamp = int(headers["webhook-timestamp"])
                assert spec_verify(SECRET, headers, body, stamp)
                receiver.attempts.append(headers["webhook-id"])
                if len(receiver.attempts) == 1 and receiver.victim is not None:
                    receiver.victim.kill()  # kill -9 between "POST sent" and "recorded"
                    return
                receiver.applied.setdefault(headers["webhook-id"], json.loads(body))
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/catch"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def _status(engine: sa.Engine) -> str:
    with engine.connect() as conn:
        return str(conn.execute(sa.select(writeback_outbox.c.status)).scalar())


async def test_sigkill_between_post_and_record_delivers_one_id(
    database_url: str, tmp_path: Path
) -> None:
    engine = create_engine(database_url)
    migrate(engine)
    receiver = Receiver()
    with begin_immediate(engine) as conn:
        queued = enqueue(
            conn,
            location_id="loc1",
            action="create_lead",
            dedupe_key="create_lead:g1",
            ghl_entity="contact",
            ghl_id="g1",
            data={"email": "crash@x.io", "ghl_contact_id": "g1"},
            url=receiver.url,
            now=time.time(),
        )
    env = {
        "GHLSYNC_DATABASE_URL": database_url,
        "GHLSYNC_GHL_TOKEN": "unused-token",
        "GHLSYNC_GHL_LOCATION_ID": "loc1",
        "GHLSYNC_GHL_BASE_URL": "http://127.0.0.1:9",
        "GHLSYNC_WRITEBACK_SECRET": SECRET,
        "GHLSYNC_WRITEBACK_URL_CREATE_LEAD": receiver.url,
        "GHLSYNC_CONFIG": str(tmp_path / "none.yaml"),
    }
    (tmp_path / "none.yaml").write_text("{}\n")
    try:
        first = WorkerProcess(CLI_WORKER, env, tmp_path / "w1.log")
        receiver.victim = first
        await wait_until(lambda: not first.alive(), seconds=60, what="the first worker killed")
        assert receiver.attempts == [queued.id]
        assert _status(engine) == "sending"  # sent, never recorded
        with begin_immediate(engine) as conn:  # its lease runs out (time passes)
            conn.execute(sa.update(writeback_outbox).values(lease_expires_at=0.0))
        second = WorkerProcess(CLI_WORKER, env, tmp_path / "w2.log")
        try:
            await wait_until(lambda: _status(engine) == "delivered", seconds=60, what="delivery")
        finally:
            second.stop()
        assert receiver.attempts == [queued.id, queued.id]  # the same webhook-id both times
        assert list(receiver.applied) == [queued.id]  # applied once
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()
        engine.dispose()
