"""Recipe timers survive the worker: a real `ghlsync worker` process is SIGKILLed (or stopped
with SIGTERM) while a recipe's `after: {wait}` timer waits, and a new worker process fires it,
exactly once; a worker SIGKILLed right after the fired timer's step reached GHL leaves no
second task behind (the next worker finds the task by the step's pending row).

The timer is an ordinary `work_items` row with a future `available_at` (engine/flows/recipes/
_schedule.py), so nothing of it lives in the worker. The worker process reads the wall clock
and takes no injected one; so that no step depends on how fast a loaded machine runs, the
waits in the first test are an hour long and, once the first worker is gone, the test lets
"the hour pass" by moving the row's due time to 1.5 s ahead (as test_recipes_crash moves
leases). The last test waits a real second. Either way the task must reach GHL no earlier
than the timer's due time.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from typer.testing import CliRunner

from ghlsync.cli import app
from ghlsync.engine.flows.recipes import timer_status
from ghlsync.mapping import AppConfig
from ghlsync.mapping._load import preset_text
from ghlsync.sandbox import SandboxServer
from ghlsync.store import begin_immediate, create_engine, migrate
from ghlsync.store._tables_engine import work_items
from tests._recipes_kit import LEAD, deliver
from tests._robust_kit import CLI_WORKER, WorkerProcess, wait_until
from tests.test_recipes_crash import KillingProxy

TITLE = "Call Ann back"


def _timer(wait: str) -> dict[str, Any]:
    return {
        "name": "call-back",
        "when": {"trigger": "dripjobs.lead.created"},
        "do": [{"create_task": {"title": "Call {first_name} back", "due": "+1d 09:00"}}],
        "after": {"wait": wait},
    }


def _rows(engine: sa.Engine) -> list[tuple[str, float, int]]:
    """(status, available_at, attempts) of the recipe rows."""
    c = work_items.c
    query = sa.select(c.status, c.available_at, c.attempts).where(c.entity_type == "recipe")
    with engine.connect() as conn:
        return [(str(r[0]), float(r[1]), int(r[2])) for r in conn.execute(query)]


def _task_posts(sandbox: SandboxServer) -> list[float]:
    """When each task create reached GHL (the sandbox's call log)."""
    calls = list(sandbox.state.requests)
    return [c["time"] for c in calls if c["method"] == "POST" and c["path"].endswith("/tasks")]


def _titles(sandbox: SandboxServer) -> list[str]:
    location = sandbox.state.location(sandbox.location_id)
    assert location is not None
    return sorted(t["title"] for t in location.tasks.values())


class Setup:
    """A store, the sandbox (optionally behind a proxy), a config with one timer recipe and a
    lead delivered into the inbox; the environment of a `ghlsync worker` process."""

    def __init__(self, database_url: str, tmp_path: Path, wait: str, *, proxy: bool) -> None:
        self.tmp_path = tmp_path
        self.engine = create_engine(database_url)
        migrate(self.engine)
        self.sandbox = SandboxServer().start()
        self.proxy = KillingProxy(self.sandbox.url) if proxy else None
        recipe = _timer(wait)
        raw = yaml.safe_load(preset_text())
        raw["recipes"] = [recipe]
        raw["worker"] = {**raw.get("worker", {}), "poll_interval": 0.05}
        self.config_file = tmp_path / "ghlsync.yaml"
        self.config_file.write_text(yaml.safe_dump(raw, sort_keys=False))
        config = AppConfig.default().model_copy(update={"recipes": [recipe]})
        deliver(self.engine, config, self.sandbox.location_id, "d1", "lead.created", **LEAD)
        self.env = {
            "GHLSYNC_CONFIG": str(self.config_file),
            "GHLSYNC_DATABASE_URL": database_url,
            "GHLSYNC_GHL_BASE_URL": self.proxy.url if self.proxy else self.sandbox.url,
            "GHLSYNC_GHL_TOKEN": self.sandbox.token,
            "GHLSYNC_GHL_LOCATION_ID": self.sandbox.location_id,
            "GHLSYNC_GHL_CALENDAR_ID": self.sandbox.calendar_id,
        }
        self.workers = 0

    def worker(self) -> WorkerProcess:
        self.workers += 1
        return WorkerProcess(CLI_WORKER, self.env, self.tmp_path / f"w{self.workers}.log")

    async def status(self) -> list[dict[str, Any]]:
        """`ghlsync status --json`'s recipe timers."""
        env = {
            "GHLSYNC_DATABASE_URL": self.env["GHLSYNC_DATABASE_URL"],
            "GHLSYNC_CONFIG": str(self.config_file),
        }
        shown = await asyncio.to_thread(CliRunner().invoke, app, ["status", "--json"], env=env)
        assert shown.exit_code == 0, shown.output
        timers: list[dict[str, Any]] = json.loads(shown.output)["recipe_timers"]
        return timers

    def close(self) -> None:
        if self.proxy is not None:
            self.proxy.server.shutdown()
            self.proxy.server.server_close()
        self.sandbox.stop()
        self.engine.dispose()


async def _until_done(setup: Setup, worker: WorkerProcess) -> None:
    try:
        await wait_until(
            lambda: [s for s, _, _ in _rows(setup.engine)] == ["done"],
            seconds=90,
            what="the timer's run done",
        )
    except AssertionError as error:
        raise AssertionError(f"{error}\n{worker.output()}") from None
    finally:
        worker.stop()


@pytest.mark.parametrize("how", ["sigkill", "sigterm"])
async def test_a_timer_waiting_when_its_worker_goes_fires_once_on_the_next(
    database_url: str, tmp_path: Path, how: str
) -> None:
    setup = Setup(database_url, tmp_path, "1h", proxy=False)
    try:
        first = setup.worker()
        await wait_until(
            lambda: [s for s, _, _ in _rows(setup.engine)] == ["pending"],
            seconds=90,
            what="the timer queued",
        )
        if how == "sigkill":
            first.kill()
        else:
            assert first.stop() == 0, first.output()  # drains: nothing is in flight
        [(status, due, attempts)] = _rows(setup.engine)
        assert (status, attempts) == ("pending", 0)
        assert due > time.time() + 3000  # an hour after the lead was synced
        assert _task_posts(setup.sandbox) == [] and _titles(setup.sandbox) == []
        [shown] = await setup.status()
        assert (shown["waiting"], shown["next_due"]) == (1, due)

        due = time.time() + 1.5  # the hour passes while no worker runs
        with begin_immediate(setup.engine) as conn:
            conn.execute(sa.update(work_items).values(available_at=due))
        second = setup.worker()
        await _until_done(setup, second)

        [posted] = _task_posts(setup.sandbox)
        assert posted >= due
        assert _titles(setup.sandbox) == [TITLE]
        assert await setup.status() == []
        assert timer_status(setup.engine, 0.0) == []  # nothing pending, even long past due
    finally:
        setup.close()


async def test_sigkill_after_the_fired_timer_reached_ghl_makes_no_second_task(
    database_url: str, tmp_path: Path
) -> None:
    setup = Setup(database_url, tmp_path, "1s", proxy=True)
    assert setup.proxy is not None
    try:
        first = setup.worker()
        setup.proxy.victim = first  # killed once its first task create reached GHL
        await wait_until(lambda: not first.alive(), seconds=90, what="the first worker killed")
        [(status, due, _)] = _rows(setup.engine)
        assert status == "leased"  # claimed when due, never recorded
        [posted] = _task_posts(setup.sandbox)
        assert posted >= due
        assert _titles(setup.sandbox) == [TITLE]
        with begin_immediate(setup.engine) as conn:  # its leases run out (time passes)
            conn.execute(sa.update(work_items).values(lease_expires_at=0.0))

        second = setup.worker()
        await _until_done(setup, second)

        assert len(_task_posts(setup.sandbox)) == 1, second.output()
        assert _titles(setup.sandbox) == [TITLE]
        assert await setup.status() == []
        assert timer_status(setup.engine, 0.0) == []
    finally:
        setup.close()
