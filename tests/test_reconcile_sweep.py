"""Reconcile: drift injected straight into the sandbox (no webhook reaches ghlsync) is found,
`--repair` fixes what it should and leaves duplicates alone, and the sweep keeps to its share
of the rate budget."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from ghlsync.engine.state import _ghlrecords
from ghlsync.reconcile import Sweep, since_date
from ghlsync.sandbox import _contacts
from ghlsync.store import begin_immediate
from ghlsync.store._tables_sync import id_map, sync_state
from tests._twoway_kit import TwoWay


async def _customers(tw: TwoWay, n: int) -> dict[str, str]:
    """`n` customers synced to GHL; their GHL ids by DripJobs id."""
    for i in range(n):
        tw.dripjobs(
            "customer.updated",
            f"dj{i}",
            first_name=f"P{i}",
            email=f"p{i}@x.io",
            city="Austin",
            updated_at=tw.clock.now(),
        )
    await tw.settle()
    with tw.engine.connect() as conn:
        rows = conn.execute(sa.select(id_map.c.source_id, id_map.c.ghl_id)).all()
    return {r.source_id: r.ghl_id for r in rows}


def _inject(tw: TwoWay, ids: dict[str, str]) -> dict[str, Any]:
    """One drift of every kind, made directly in GHL or the store (no webhook forwarded)."""
    state = tw.sandbox.state
    location = state.locations[tw.sandbox.location_id]
    with state.lock:
        _contacts.delete(state, location, location.contacts[ids["dj0"]])
        location.contacts[ids["dj1"]]["city"] = "Boston"
        twin = _contacts.create(state, location, {"email": "p2@x.io"}, check=False)
    tw.ghl_events.clear()  # GHL's webhooks for these never reached us
    with begin_immediate(tw.engine) as conn:
        conn.execute(
            sa.insert(sync_state).values(
                location_id=tw.sandbox.location_id,
                entity_type="contact",
                source_id="ghost",
                side="ghl",
                content_hash="h",
                snapshot=json.dumps({"body": {"email": "ghost@x.io"}}),
                synced_at=tw.clock.now(),
            )
        )
    return {"twin": twin["id"]}


async def test_every_kind_of_drift_is_found(tw: TwoWay) -> None:
    ids = await _customers(tw, 6)
    extra = _inject(tw, ids)
    report = await Sweep(tw.engine, tw.worker.client, tw.sandbox.location_id, clock=tw.clock).run()
    found = {(d.kind, tuple(d.dripjobs_ids)): d for d in report.drifts}
    assert report.counts() == {
        "deleted_in_ghl": 1,
        "changed_in_ghl": 1,
        "ghl_duplicate": 1,
        "store_orphan": 1,
    }
    assert found[("deleted_in_ghl", ("dj0",))].ghl_ids == [ids["dj0"]]
    changed = found[("changed_in_ghl", ("dj1",))]
    assert changed.fields is not None and changed.fields["city"] == {
        "ours": "Austin",
        "ghl": "Boston",
    }
    duplicate = found[("ghl_duplicate", ("dj2",))]
    assert sorted(duplicate.ghl_ids) == sorted([ids["dj2"], extra["twin"]])
    assert "ghost" in [d.dripjobs_ids[0] for d in report.drifts if d.kind == "store_orphan"]
    assert report.contacts_seen == 6 and all(d.repair is None for d in report.drifts)


async def test_repair_fixes_what_is_safe_and_never_merges(tw: TwoWay) -> None:
    ids = await _customers(tw, 4)
    extra = _inject(tw, ids)
    location = tw.sandbox.state.locations[tw.sandbox.location_id]
    report = await Sweep(tw.engine, tw.worker.client, tw.sandbox.location_id, clock=tw.clock).run(
        repair=True
    )
    repairs = {d.kind: d.repair or "" for d in report.drifts}
    assert repairs["deleted_in_ghl"].startswith("queued to be created again")
    assert repairs["changed_in_ghl"].startswith("recorded on the GHL side")
    assert repairs["ghl_duplicate"].startswith("linked (audit log) and reported")
    assert repairs["store_orphan"] == "stray sync state dropped"
    await tw.settle()
    # The deleted customer is back (a new contact), the duplicate pair untouched.
    back = [c for c in location.contacts.values() if c.get("email") == "p0@x.io"]
    assert len(back) == 1 and back[0]["id"] != ids["dj0"]
    assert {ids["dj2"], extra["twin"]} <= set(location.contacts)
    # The GHL-side edit is now known on the GHL side, for the owner rules.
    with tw.engine.connect() as conn:
        record = _ghlrecords.get(conn, tw.sandbox.location_id, "contact", ids["dj1"])
        stray = conn.execute(
            sa.select(sa.func.count())
            .select_from(sync_state)
            .where(sync_state.c.source_id == "ghost")
        ).scalar_one()
    assert record.fields["city"] == "Boston" and record.pending["city"]["value"] == "Boston"
    assert stray == 0
    assert location.contacts[ids["dj1"]]["city"] == "Boston"  # GHL was not overwritten
    # A second sweep finds only what has no safe fix.
    again = await Sweep(tw.engine, tw.worker.client, tw.sandbox.location_id, clock=tw.clock).run()
    assert again.counts() == {"ghl_duplicate": 1}


async def test_the_sweep_keeps_to_its_budget_share(tw: TwoWay) -> None:
    await _customers(tw, 12)
    tw.clock.advance(10)  # the syncing's burst window is over
    started = tw.clock.monotonic()
    before = len(tw.sandbox.state.requests)
    report = await Sweep(
        tw.engine, tw.worker.client, tw.sandbox.location_id, clock=tw.clock, page_size=5
    ).run()
    calls = tw.sandbox.state.requests[before:]
    assert report.calls == len(calls) == 3 and report.contacts_seen == 12
    assert {r["status"] for r in calls} == {200}
    # The sandbox allows 100 calls per 10 s: 10% of it (the default) is one call per second.
    assert tw.clock.monotonic() - started >= (len(calls) - 1) * 1.0


async def test_since_walks_only_recent_changes_and_looks_for_no_deletions(tw: TwoWay) -> None:
    ids = await _customers(tw, 3)
    tw.clock.advance(3600)
    state = tw.sandbox.state
    location = state.locations[tw.sandbox.location_id]
    with state.lock:
        _contacts.delete(state, location, location.contacts[ids["dj0"]])
    await tw.ghl_user("PUT", f"/contacts/{ids['dj1']}", {"city": "Boston"})  # updated now
    tw.ghl_events.clear()
    since = datetime.fromtimestamp(tw.clock.now() - 60, UTC).isoformat()
    report = await Sweep(
        tw.engine,
        tw.worker.client,
        tw.sandbox.location_id,
        clock=tw.clock,
        since=since_date(since),
    ).run()
    assert report.contacts_seen == 1 and not report.complete
    assert report.counts() == {"changed_in_ghl": 1}  # the deletion is not looked for


def test_cli_reports_drift_as_json_and_tables(tmp_path: Any) -> None:
    from typer.testing import CliRunner

    from ghlsync.cli import app
    from ghlsync.sandbox import SandboxServer
    from ghlsync.store import create_engine, migrate

    server = SandboxServer(burst=1000, interval_ms=1000).start()
    try:
        location = server.state.locations[server.location_id]
        with server.state.lock:
            contact = _contacts.create(
                server.state, location, {"email": "a@x.io", "city": "Boston"}
            )
        url = f"sqlite:///{tmp_path / 'ghlsync.db'}"
        engine = create_engine(url)
        migrate(engine)
        with engine.begin() as conn:
            conn.execute(
                sa.insert(id_map).values(
                    location_id=server.location_id,
                    entity_type="contact",
                    source_id="dj1",
                    ghl_id=contact["id"],
                    state="confirmed",
                    updated_at=1.0,
                )
            )
            body = {"email": "a@x.io", "city": "Austin"}
            conn.execute(
                sa.insert(sync_state).values(
                    location_id=server.location_id,
                    entity_type="contact",
                    source_id="dj1",
                    side="ghl",
                    content_hash="h",
                    snapshot=json.dumps({"body": body}),
                    synced_at=1.0,
                )
            )
        engine.dispose()
        env = {
            "GHLSYNC_DATABASE_URL": url,
            "GHLSYNC_GHL_BASE_URL": server.url,
            "GHLSYNC_GHL_LOCATION_ID": server.location_id,
            "GHLSYNC_GHL_TOKEN": server.token,
            "COLUMNS": "160",
        }
        runner = CliRunner()
        data = json.loads(
            runner.invoke(app, ["reconcile", "--json", "--budget", "1"], env=env).output
        )
        assert data["counts"] == {"changed_in_ghl": 1} and data["contacts_seen"] == 1
        assert data["drift"][0]["fields"]["city"] == {"ours": "Austin", "ghl": "Boston"}
        shown = runner.invoke(app, ["reconcile", "--budget", "1"], env=env)
        assert shown.exit_code == 0 and "changed_in_ghl" in shown.output and "dj1" in shown.output
        bad = runner.invoke(app, ["reconcile", "--since", "last tuesday"], env=env)
        assert bad.exit_code == 2 and "is not a date" in bad.output
    finally:
        server.stop()
