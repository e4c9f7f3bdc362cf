"""Helpers for the robustness tests: worker processes, a config file, duplicate counts.

`python -m tests._robust_kit --timeout 1.0` is a tiny worker runner for the fault tests: the
same worker `ghlsync worker` runs (config from `$GHLSYNC_CONFIG` and the `GHLSYNC_*`
variables), but with a short GHL client timeout, which the CLI has no option for; an injected
"timeout" fault must outlast the client's timeout to be a lost answer rather than a slow one.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import IO, Any

import sqlalchemy as sa
import yaml

from ghlsync.engine import queue_status

ROOT = Path(__file__).resolve().parent.parent
Record = dict[str, Any]

# `ghlsync worker` exactly as installed, run by this interpreter.
CLI_WORKER = [sys.executable, "-c", "from ghlsync.cli import main; main()", "worker"]


def runner_worker(timeout: float) -> list[str]:
    """The command line of this module's runner with a `timeout`-second GHL client."""
    return [sys.executable, "-m", "tests._robust_kit", "--timeout", str(timeout)]


def write_config(path: Path, **worker: float) -> Path:
    """The embedded preset with `worker:` settings overridden, written to `path`."""
    from ghlsync.mapping._load import preset_text

    raw = yaml.safe_load(preset_text())
    raw["worker"] = {**raw.get("worker", {}), **worker}
    path.write_text(yaml.safe_dump(raw, sort_keys=False), "utf-8")
    return path


class WorkerProcess:
    """One worker subprocess; its output goes to a log file read back on failure."""

    def __init__(self, command: list[str], env: Mapping[str, str], log: Path) -> None:
        self.log = log
        self._out: IO[bytes] = log.open("ab")
        self.proc = subprocess.Popen(
            command, cwd=ROOT, env={**os.environ, **env}, stdout=self._out, stderr=self._out
        )

    def kill(self) -> None:
        """SIGKILL: no cleanup, leases left behind, a request possibly half-sent."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)
        self._out.close()

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM and wait: the worker finishes its items in flight; the exit code."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self._out.close()
        return code

    def alive(self) -> bool:
        """True while the process runs."""
        return self.proc.poll() is None

    def output(self) -> str:
        """Everything every process wrote to this log so far (the tail, for messages)."""
        return self.log.read_text("utf-8", errors="replace")[-4000:]


def queue_totals(engine: sa.Engine) -> dict[str, int]:
    """Work rows by status, plus dead letters."""
    return queue_status(engine).totals()


def finished(totals: Mapping[str, int]) -> int:
    """Work rows that are done or dead."""
    return totals["done"] + totals["dead"]


async def wait_until(
    check: Callable[[], bool], *, seconds: float, what: str, poll: float = 0.05
) -> None:
    """Poll `check` (in a thread) until it holds; AssertionError naming `what` on timeout."""
    deadline = time.monotonic() + seconds
    while not await asyncio.to_thread(check):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds:.0f} s waiting for {what}")
        await asyncio.sleep(poll)


# ------------------------------------------------------------------------- GHL duplicates


def duplicate_records(state: Record, location_id: str) -> list[str]:
    """Records GHL holds twice: contacts by email and by phone, tasks by (contact, title,
    due date), notes by (contact, body), appointments by (contact, start)."""
    location = state["locations"][location_id]
    keys: dict[str, Callable[[Record], tuple[Any, ...]]] = {
        "contacts": lambda c: ("email", str(c.get("email") or "").lower()),
        "tasks": lambda t: (t.get("contactId"), t.get("title"), t.get("dueDate")),
        "notes": lambda n: (n.get("contactId"), n.get("body")),
        "appointments": lambda a: (a.get("contactId"), a.get("startTime")),
    }
    problems = [
        f"{kind}: {key} {n} times"
        for kind, key_of in keys.items()
        for key, n in _repeats(key_of(r) for r in location[kind])
    ]
    phones = (("phone", c.get("phone")) for c in location["contacts"] if c.get("phone"))
    problems += [f"contacts: {key} {n} times" for key, n in _repeats(phones)]
    return problems


def _repeats(keys: Iterable[tuple[Any, ...]]) -> list[tuple[tuple[Any, ...], int]]:
    return [(key, n) for key, n in Counter(keys).items() if n > 1 and key[-1] not in ("", None)]


# ------------------------------------------------------------------------------ the runner


async def _run(client_timeout: float) -> None:
    from ghlsync.mapping import Mapper, load_config
    from ghlsync.server._run import build_worker
    from ghlsync.store import create_engine, migrate

    config = load_config()
    engine = create_engine(config.database_url)
    migrate(engine)
    worker = build_worker(engine, config, Mapper(config), timeout=client_timeout)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await worker.run(stop)
    finally:
        await worker.client.aclose()
        engine.dispose()


def main(argv: list[str] | None = None) -> None:
    """Run one worker until SIGTERM (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m tests._robust_kit")
    parser.add_argument("--timeout", type=float, default=30.0, help="GHL client timeout (s)")
    args = parser.parse_args(argv)
    asyncio.run(_run(args.timeout))


if __name__ == "__main__":
    main()


# ------------------------------------------------------------------ the end-to-end rig


class Rig:
    """The demo pipeline (sandbox, store, receiver on loopback) with a worker of its own,
    configured for quick retries: `max_attempts` claims, polling every 50 ms."""

    def __init__(self, database_url: str, *, max_attempts: int = 3) -> None:
        from ghlsync.demo import Pipeline, PipelineOptions

        self.pipe = Pipeline(PipelineOptions(database_url=database_url, start_worker=False))
        self.max_attempts = max_attempts
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.worker: Any = None

    async def __aenter__(self) -> Rig:
        await self.pipe.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self.stop_worker()
        finally:
            await self.pipe.close()

    @property
    def engine(self) -> sa.Engine:
        """The pipeline's store."""
        assert self.pipe.engine is not None
        return self.pipe.engine

    def start_worker(self) -> None:
        """Run the worker `ghlsync serve` builds, with this rig's quick-retry settings."""
        from ghlsync.mapping import Mapper
        from ghlsync.server._run import build_worker

        base = self.pipe.config
        worker = base.worker.model_copy(
            update={"max_attempts": self.max_attempts, "poll_interval": 0.05}
        )
        config = base.model_copy(update={"worker": worker})
        self.worker = build_worker(self.engine, config, Mapper(config))
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self.worker.run(self._stop))

    async def stop_worker(self) -> None:
        """Stop the worker; AssertionError if it died on its own before."""
        if self._task is None:
            return
        task, self._task = self._task, None
        assert not task.done(), f"the worker stopped by itself: {task}"
        self._stop.set()
        await task
        await self.worker.client.aclose()

    async def post(
        self,
        event: str,
        body: Mapping[str, Any] | None = None,
        *,
        content: bytes | None = None,
        secret: str | None = None,
    ) -> Any:
        """POST one delivery to the receiver (JSON, Bearer secret); the httpx2 response."""
        import json

        import httpx2

        data = content if content is not None else json.dumps(dict(body or {})).encode()
        headers = {
            "Authorization": f"Bearer {secret or self.pipe.options.secret}",
            "Content-Type": "application/json",
        }
        async with httpx2.AsyncClient(base_url=self.pipe.receiver_url, timeout=30) as client:
            return await client.post(f"/hooks/dripjobs/{event}", content=data, headers=headers)

    async def drain(self) -> None:
        """Until the worker has nothing pending or leased (it must be running)."""
        assert self._task is not None and not self._task.done(), "no worker is running"
        await self.pipe.wait_drained()

    async def location(self) -> Record:
        """The sandbox location's records: contacts, tasks, notes, appointments."""
        state = await self.pipe.sandbox_json("/_sandbox/state")
        location: Record = state["locations"][self.pipe.location_id]
        return location

    async def calls(self) -> list[tuple[str, str]]:
        """(method, path) of every GHL API call the sandbox answered, in order."""
        log = await self.pipe.sandbox_json("/_sandbox/requests")
        return [(r["method"], r["path"]) for r in log]

    def dead_letters(self) -> list[Any]:
        """Every dead letter, oldest first."""
        from ghlsync.engine import list_dead_letters

        return sorted(list_dead_letters(self.engine), key=lambda d: d.id)

    def count(self, table: sa.Table) -> int:
        """Rows in one store table."""
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())
