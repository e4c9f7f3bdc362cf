"""The periodic reconcile sweep of `serve` (`SweepSchedule`): it sweeps every `reconcile.every`
and records it, a sweep cut off mid-walk walks on from its stored cursor after a restart, and
`ghlsync status` shows the last sweep and what it found (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import functools
import json
from typing import Any

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from ghlsync._clock import FakeClock
from ghlsync.mapping._reconcile_settings import ReconcileSettings
from ghlsync.reconcile import SweepSchedule, sweep_locations
from ghlsync.reconcile._progress import load
from ghlsync.sandbox import _contacts
from tests._twoway_kit import TwoWay
from tests.test_reconcile_sweep import _customers

EVERY = 600.0


class _StopAfterSweeps(FakeClock):
    """The test's clock (`inner`'s time): the first idle wait of the schedule after `n` sweeps
    ended sets `stop`, so the run ends after a known number of sweeps."""

    def __init__(self, inner: FakeClock, stop: asyncio.Event, n: int) -> None:
        super().__init__()
        self._inner, self._stop, self._n = inner, stop, n
        self.schedule: SweepSchedule | None = None

    def now(self) -> float:
        return self._inner.now()

    def monotonic(self) -> float:
        return self._inner.monotonic()

    async def sleep(self, seconds: float) -> None:
        swept = len(self.schedule.reports) if self.schedule is not None else 0
        if seconds >= 30 and swept >= self._n:  # an idle wait, not the sweep's pacing
            self._stop.set()
        await self._inner.sleep(seconds)


class _CutClient:
    """The worker's client, except that its `at`-th search sets `stop` (a SIGTERM while
    the page is in flight); every search's `searchAfter` is kept."""

    def __init__(self, client: Any, stop: asyncio.Event, at: int | None) -> None:
        self._client, self._stop, self._at = client, stop, at
        self.contacts = self
        self.cursors: list[Any] = []

    def last_rate(self, location: str) -> Any:
        return self._client.last_rate(location)

    async def search_page(self, location: str, body: dict[str, Any]) -> Any:
        self.cursors.append(body.get("searchAfter"))
        if len(self.cursors) == self._at:
            self._stop.set()
        return await self._client.contacts.search_page(location, body)

    async def get(self, location: str, ghl_id: str) -> Any:
        return await self._client.contacts.get(location, ghl_id)


def _searches(tw: TwoWay, since: int = 0) -> int:
    """`POST /contacts/search` calls in the sandbox's call log."""
    log = tw.sandbox.state.requests[since:]
    return sum(1 for r in log if r["path"] == "/contacts/search")


def _schedule(tw: TwoWay, client: Any, clock: Any, **settings: Any) -> SweepSchedule:
    locations = [tw.sandbox.location_id]
    reconcile = ReconcileSettings(every=EVERY, **settings)
    schedule = SweepSchedule(
        tw.engine, client, reconcile, lambda: locations, clock=clock, page_size=5
    )
    if isinstance(clock, _StopAfterSweeps):
        clock.schedule = schedule
    return schedule


async def test_serve_sweeps_every_interval_and_records_it(tw: TwoWay) -> None:
    ids = await _customers(tw, 7)
    location = tw.sandbox.state.locations[tw.sandbox.location_id]
    with tw.sandbox.state.lock:
        location.contacts[ids["dj1"]]["city"] = "Boston"  # no webhook told us
    tw.clock.advance(10)
    stop = asyncio.Event()
    clock = _StopAfterSweeps(tw.clock, stop, n=2)
    before, started = len(tw.sandbox.state.requests), tw.clock.now()
    schedule = _schedule(tw, tw.worker.client, clock)
    await asyncio.wait_for(schedule.run(stop), timeout=30)
    # Two sweeps (one at start, one `every` later), then the second idle wait was stopped.
    assert [r.contacts_seen for r in schedule.reports] == [7, 7]
    assert schedule.reports[1].started_at - schedule.reports[0].finished_at >= EVERY
    assert _searches(tw, before) == 4  # two pages per sweep of 7 contacts
    state = load(tw.engine, tw.sandbox.location_id)
    assert state is not None and not state.under_way and state.cursor is None
    assert state.findings == {"changed_in_ghl": 1} and state.complete
    assert state.started_at >= started + EVERY and state.contacts_seen == 7


async def test_a_cut_off_sweep_resumes_from_its_cursor(tw: TwoWay) -> None:
    await _customers(tw, 12)  # 3 pages of 5
    tw.clock.advance(10)
    before = len(tw.sandbox.state.requests)
    # First run: SIGTERM while the second page is in flight.
    stop = asyncio.Event()
    first = _CutClient(tw.worker.client, stop, at=2)
    await asyncio.wait_for(_schedule(tw, first, tw.clock).run(stop), timeout=30)
    cut = load(tw.engine, tw.sandbox.location_id)
    assert cut is not None and cut.under_way and cut.cursor is not None
    assert cut.contacts_seen in (5, 10)
    # Restart: the sweep walks on from the stored cursor, not from the first page.
    stop = asyncio.Event()
    again = _CutClient(tw.worker.client, stop, at=None)
    clock = _StopAfterSweeps(tw.clock, stop, n=1)
    schedule = _schedule(tw, again, clock)
    await asyncio.wait_for(schedule.run(stop), timeout=30)
    assert again.cursors[0] == cut.cursor
    walked = [json.dumps(c) for c in first.cursors + again.cursors]
    assert walked.count(json.dumps(None)) == 1  # the first page was asked for once
    assert len(walked) - len(set(walked)) <= 1  # only the page in flight is asked again
    assert _searches(tw, before) <= 3 + 1
    (report,) = schedule.reports
    assert report.contacts_seen == 12 and report.complete  # resumed, still a deletion check
    done = load(tw.engine, tw.sandbox.location_id)
    assert done is not None and not done.under_way and done.cursor is None


async def test_status_shows_the_last_sweep(tw: TwoWay, database_url: str) -> None:
    from ghlsync.cli import app

    ids = await _customers(tw, 3)
    location = tw.sandbox.state.locations[tw.sandbox.location_id]
    with tw.sandbox.state.lock:
        _contacts.create(tw.sandbox.state, location, {"email": "p1@x.io"}, check=False)
    assert ids
    stop = asyncio.Event()
    clock = _StopAfterSweeps(tw.clock, stop, n=1)
    await asyncio.wait_for(_schedule(tw, tw.worker.client, clock).run(stop), timeout=30)
    env = {"GHLSYNC_DATABASE_URL": database_url, "COLUMNS": "200"}
    runner = CliRunner()
    # `status` runs its own event loop: off this one.
    shown = await asyncio.to_thread(runner.invoke, app, ["status", "--json"], env=env)
    assert shown.exit_code == 0, shown.output
    (sweep,) = json.loads(shown.output)["sweeps"]
    assert sweep["location_id"] == tw.sandbox.location_id and not sweep["under_way"]
    assert sweep["findings"] == {"ghl_duplicate": 1} and sweep["contacts_seen"] == 4
    table = await asyncio.to_thread(runner.invoke, app, ["status"], env=env)
    assert table.exit_code == 0 and "Reconcile sweeps" in table.output
    assert "1 ghl_duplicate" in table.output


def test_sweep_locations_are_the_configured_and_installed_ones(engine_store: Any) -> None:
    assert sweep_locations(engine_store, "loc1") == ["loc1"]
    assert sweep_locations(engine_store, None) == []


def test_reconcile_settings_are_validated() -> None:
    assert ReconcileSettings().every == 6 * 3600 and ReconcileSettings().budget == 0.1
    assert ReconcileSettings.model_validate({"every": "30m"}).every == 1800
    assert ReconcileSettings.model_validate({"every": 90}).every == 90
    for bad in ({"every": "soon"}, {"every": 0}, {"budget": 0}, {"budget": 1.5}, {"x": 1}):
        with pytest.raises(ValidationError):
            ReconcileSettings.model_validate(bad)


@pytest.mark.slow
def test_a_real_serve_sweeps_at_start_and_stops_cleanly(tmp_path: Any) -> None:
    """`ghlsync serve` (a real process, the defaults): the location is swept at start, the
    sweep recorded, and SIGTERM still ends the process cleanly."""
    import sqlalchemy as sa

    from ghlsync.sandbox import running_sandbox
    from tests.test_receiver_serve import SECRET, serve, stop, wait_for

    db = f"sqlite:///{tmp_path / 'serve.db'}"
    with running_sandbox() as sandbox:
        location = sandbox.state.locations[sandbox.location_id]
        with sandbox.state.lock:
            for email in ("a@x.io", "b@x.io", "a@x.io"):
                _contacts.create(sandbox.state, location, {"email": email}, check=False)
        env = {
            "GHLSYNC_DATABASE_URL": db,
            "GHLSYNC_DRIPJOBS_SECRET": SECRET,
            "GHLSYNC_GHL_BASE_URL": sandbox.url,
            "GHLSYNC_GHL_LOCATION_ID": sandbox.location_id,
            "GHLSYNC_GHL_TOKEN": sandbox.token,
        }
        proc = serve("--port", "0", env=env, cwd=tmp_path)
        try:

            def swept() -> Any:
                engine = sa.create_engine(db)
                try:
                    with engine.connect() as conn:
                        query = "SELECT findings, contacts_seen FROM reconcile_sweeps "
                        query += "WHERE finished_at IS NOT NULL"
                        return conn.execute(sa.text(query)).one_or_none()
                except sa.exc.OperationalError:  # not migrated yet
                    return None
                finally:
                    engine.dispose()

            row = wait_for(swept, proc)
            code, output = stop(proc)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert json.loads(row.findings) == {"ghl_duplicate": 1} and row.contacts_seen == 3
    assert code == 0, output
    assert "reconcile: " in output and "swept, 3 contacts, 1 ghl_duplicate" in output


def test_one_process_sweeps_a_location_at_a_time(engine_store: Any) -> None:
    """Two `serve` processes on one store: the second does not take a sweep under way until
    the first releases it (clean stop) or its heartbeat is older than the lease (SIGKILL)."""
    from ghlsync.reconcile import _progress

    claim = functools.partial(_progress.claim, engine_store, "loc1", every=EVERY, lease=900)
    first = claim("a", now=1000.0)
    assert first is not None and first.under_way and first.cursor is None
    _progress.checkpoint(engine_store, "loc1", ["t", "c1"], 100, 1010.0)
    assert claim("b", now=1020.0) is None  # "a" is sweeping
    _progress.release(engine_store, "loc1", "a")
    taken = claim("b", now=1030.0)
    assert taken is not None and taken.cursor == ["t", "c1"] and taken.contacts_seen == 100
    assert claim("a", now=1040.0) is None  # now "b" holds it
    stale = claim("a", now=1030.0 + 901)  # "b" went silent past the lease
    assert stale is not None and stale.cursor == ["t", "c1"]
    _progress.finish(
        engine_store,
        "loc1",
        findings={"store_orphan": 2},
        contacts_seen=250,
        complete=False,
        now=2000.0,
    )
    assert claim("b", now=2000.0 + EVERY - 1) is None  # not due yet
    again = claim("b", now=2000.0 + EVERY)
    assert again is not None and again.cursor is None and again.findings == {"store_orphan": 2}
