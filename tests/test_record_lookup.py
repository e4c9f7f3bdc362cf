"""`ghlsync record` / `GET /api/records/{query}`: one person across both systems, found by
any of their keys; several matches listed, not guessed; the route needs the admin token."""

from __future__ import annotations

import json
from typing import Any

import httpx2
import sqlalchemy as sa
from typer.testing import CliRunner

from ghlsync._secret import Secret
from ghlsync.records import lookup
from tests._twoway_kit import TwoWay


async def _rosa(tw: TwoWay) -> str:
    """A customer touched by both directions: created from DripJobs with a task, then edited
    in GHL (city, a deal tag); the GHL contact id."""
    tw.dripjobs(
        "customer.updated",
        "dj_r1",
        first_name="Rosa",
        last_name="Diaz",
        email="Rosa@X.io",
        phone="(512) 201-3001",
        city="Austin",
        updated_at=tw.clock.now(),
    )
    tw.dripjobs("task.created", "dj_r1", task_id="t1", task_title="Call back")
    await tw.settle()
    (contact,) = tw.ghl_contacts()
    tw.clock.advance(60)
    await tw.ghl_user("PUT", f"/contacts/{contact['id']}", {"city": "Houston"})
    await tw.ghl_user("POST", f"/contacts/{contact['id']}/tags", {"tags": ["deal:won"]})
    await tw.settle()
    return str(contact["id"])


async def test_record_shows_both_sides_and_the_timeline(tw: TwoWay) -> None:
    ghl_id = await _rosa(tw)
    result = await lookup(tw.engine, tw.config, "dj_r1")
    assert len(result.matches) == 1 and result.record is not None
    rec = result.record
    person = rec["person"]
    assert (person["dripjobs_id"], person["ghl_contact_id"]) == ("dj_r1", ghl_id)
    assert person["link"] == "confirmed" and person["email"] == "rosa@x.io"
    fields = {f["field"]: f for f in rec["fields"]}
    # The value on each side: DripJobs sent Austin, GHL was changed to Houston.
    assert fields["city"]["dripjobs"] == "Austin"
    assert fields["city"]["ghl"] == "Houston"
    assert fields["email"]["owner"] == "dripjobs" and fields["city"]["owner"] == "newest"
    assert fields["firstName"]["synced_at"] is not None
    [task] = rec["children"]
    assert (task["type"], task["dripjobs_id"], task["state"]) == ("task", "t1", "synced")
    assert task["ghl_id"] and task["dripjobs"]["title"] == "Call back"
    timeline = rec["timeline"]
    assert [e["at"] for e in timeline] == sorted((e["at"] for e in timeline), reverse=True)
    directions = {e["direction"] for e in timeline}
    assert {"dripjobs→ghl", "ghl→dripjobs"} <= directions, timeline
    created = [e for e in timeline if e["entity"] == "contact:dj_r1" and e["action"] == "created"]
    assert created and created[0]["ghl_id"] == ghl_id
    assert any(e["entity"] == "task:t1" for e in timeline)
    assert rec["pending"] == [] and rec["dead_letters"] == []


async def test_any_key_finds_the_same_person(tw: TwoWay) -> None:
    ghl_id = await _rosa(tw)
    for query in ("dj_r1", ghl_id, "rosa@x.io", "ROSA@x.io ", "(512) 201-3001", "+15122013001"):
        result = await lookup(tw.engine, tw.config, query)
        assert [(m.source_id, m.ghl_id) for m in result.matches] == [("dj_r1", ghl_id)], query
    assert (await lookup(tw.engine, tw.config, "nobody@x.io")).matches == []
    assert (await lookup(tw.engine, tw.config, "512")).matches == []


async def test_one_email_on_two_customers_is_listed_not_guessed(tw: TwoWay) -> None:
    for source in ("dj_a", "dj_b"):
        tw.dripjobs("customer.updated", source, first_name="Sam", email="sam@x.io")
    await tw.settle()
    result = await lookup(tw.engine, tw.config, "sam@x.io")
    assert sorted(m.source_id or "" for m in result.matches) == ["dj_a", "dj_b"]
    assert result.record is None
    # Each one by its own id: the record says they share a GHL contact.
    one = await lookup(tw.engine, tw.config, "dj_a")
    assert one.record is not None and one.record["person"]["same_ghl_contact_as"] == ["dj_b"]


async def test_queued_and_dead_work_show_with_their_timers(tw: TwoWay) -> None:
    tw.dripjobs("customer.updated", "dj_q", first_name="Quinn", email="not-an-email")
    await tw.settle()
    tw.dripjobs("task.created", "dj_q", task_id="tq", task_title="Later")
    result = await lookup(tw.engine, tw.config, "dj_q")
    assert result.record is not None
    rec = result.record
    assert rec["person"]["link"] is None  # never reached GHL
    assert [d["entity"] for d in rec["dead_letters"]] == ["contact:dj_q"]
    assert "email" in rec["dead_letters"][0]["reason"]
    pending = {p["entity"]: p for p in rec["pending"]}
    assert pending["task:tq"]["status"] == "pending" and pending["task:tq"]["due_at"]
    assert [c["dripjobs_id"] for c in rec["children"]] == ["tq"]


async def test_api_route_needs_the_admin_token(tw: TwoWay) -> None:
    from ghlsync.server._app import create_app

    await _rosa(tw)
    token = "records-admin-token-1234567890"

    async def get(config: Any, path: str, auth: str | None = None) -> httpx2.Response:
        app = create_app(engine=tw.engine, config=config)
        headers = {"Authorization": f"Bearer {auth}"} if auth else {}
        async with httpx2.AsyncClient(
            transport=httpx2.ASGITransport(app=app), base_url="http://test"
        ) as client:
            return await client.get(path, headers=headers)

    assert (await get(tw.config, "/api/records/dj_r1")).status_code == 403  # no token set
    server = tw.config.server.model_copy(update={"admin_token": Secret(token)})
    config = tw.config.model_copy(update={"server": server})
    assert (await get(config, "/api/records/dj_r1")).status_code == 401
    assert (await get(config, "/api/records/dj_r1", "wrong-token")).status_code == 401
    ok = await get(config, "/api/records/rosa@x.io", token)
    assert ok.status_code == 200
    expected = (await lookup(tw.engine, tw.config, "rosa@x.io")).to_dict()
    assert ok.json() == json.loads(json.dumps(expected))
    phone = await get(config, "/api/records/+15122013001", token)
    assert phone.json()["matches"][0]["dripjobs_id"] == "dj_r1"
    missing = await get(config, "/api/records/nobody@x.io", token)
    assert missing.status_code == 404 and missing.json()["query"] == "nobody@x.io"


def test_cli_prints_the_record_and_json(tmp_path: Any) -> None:
    """The command over a store: tables for people, JSON for scripts, exit 1 for no one."""
    from ghlsync.cli import app
    from ghlsync.store import create_engine, migrate
    from ghlsync.store._tables_engine import audit_log
    from ghlsync.store._tables_sync import id_map, sync_state

    url = f"sqlite:///{tmp_path / 'ghlsync.db'}"
    engine = create_engine(url)
    migrate(engine)
    snapshot = {"body": {"firstName": "Lee", "email": "lee@x.io"}, "tags": ["vip"]}
    with engine.begin() as conn:
        conn.execute(
            sa.insert(id_map).values(
                location_id="loc1",
                entity_type="contact",
                source_id="dj9",
                ghl_id="g9",
                state="confirmed",
                updated_at=1.0,
            )
        )
        conn.execute(
            sa.insert(sync_state).values(
                location_id="loc1",
                entity_type="contact",
                source_id="dj9",
                side="ghl",
                content_hash="h",
                snapshot=json.dumps(snapshot),
                synced_at=2.0,
            )
        )
        conn.execute(
            sa.insert(audit_log).values(
                at=2.0,
                location_id="loc1",
                entity_type="contact",
                source_id="dj9",
                action="created",
                ghl_id="g9",
                calls=1,
            )
        )
    engine.dispose()
    runner = CliRunner()
    env = {"GHLSYNC_DATABASE_URL": url}
    shown = runner.invoke(app, ["record", "lee@x.io"], env=env)
    assert shown.exit_code == 0, shown.output
    assert "dj9" in shown.output and "g9" in shown.output and "created" in shown.output
    data = json.loads(runner.invoke(app, ["record", "g9", "--json"], env=env).output)
    assert data["record"]["tags"]["known_in_ghl"] == ["vip"]
    missing = runner.invoke(app, ["record", "nobody@x.io"], env=env)
    assert missing.exit_code == 1 and "No one" in missing.output


async def test_live_adds_what_ghl_holds_now(tw: TwoWay) -> None:
    ghl_id = await _rosa(tw)
    # Changed in GHL without a webhook reaching us: only --live can see it.
    tw.sandbox.state.locations[tw.sandbox.location_id].contacts[ghl_id]["city"] = "El Paso"
    before = len(tw.sandbox.state.requests)
    result = await lookup(tw.engine, tw.config, "dj_r1", client=tw.worker.client)
    assert result.record is not None
    live = result.record["live"]
    assert live["errors"] == [] and live["contact"]["city"] == "El Paso"
    assert [t["title"] for t in live["tasks"]] == ["Call back"]
    city = next(f for f in result.record["fields"] if f["field"] == "city")
    assert (city["dripjobs"], city["ghl"], city["ghl_live"]) == ("Austin", "Houston", "El Paso")
    assert "deal:won" in result.record["tags"]["ghl_live"]
    calls = tw.sandbox.state.requests[before:]
    assert [r["method"] for r in calls] == ["GET"] * 4  # reads only, four of them
