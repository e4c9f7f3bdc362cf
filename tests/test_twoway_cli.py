"""Two-way sync in the CLI: `validate` checks `writeback:`, `preview --ghl` shows a
write-back and sends nothing, `catalog` names the directions, `status` and `dlq` show the
outbox and the kept GHL changes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ghlsync.cli import app
from ghlsync.engine.outbox._store import claim_due, enqueue, mark_dead
from ghlsync.engine.state._ghlrecords import keep_change
from ghlsync.store import begin_immediate, create_engine, migrate
from ghlsync.store._tables_sync import ghl_pipelines
from tests._twoway_kit import SECRET

EVENT = {
    "type": "ContactCreate",
    "locationId": "loc1",
    "id": "g123",
    "firstName": "Ada",
    "email": "ada@x.io",
    "timestamp": "2026-12-06T01:00:00.000Z",
}


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("CONFIG", "DATABASE_URL", "GHL_LOCATION_ID", "WRITEBACK_SECRET"):
        monkeypatch.delenv(f"GHLSYNC_{name}", raising=False)


def run(*args: str, code: int = 0) -> Any:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result


def test_preview_ghl_shows_the_write_back_and_sends_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GHLSYNC_WRITEBACK_URL_CREATE_LEAD", "https://hooks.zapier.test/c/1")
    path = tmp_path / "event.json"
    path.write_text(json.dumps(EVENT))
    out = json.loads(run("preview", "--ghl", str(path), "--json").stdout)
    (writeback,) = out["writebacks"]
    assert writeback["action"] == "create_lead"
    assert writeback["url"] == "https://hooks.zapier.test/c/1"
    assert writeback["body"]["data"] == {
        "email": "ada@x.io",
        "first_name": "Ada",
        "ghl_contact_id": "g123",
    }
    text = run("preview", "--ghl", str(path)).stdout
    assert "create_lead → POST https://hooks.zapier.test/c/1" in text and "nothing was sent" in text


def test_validate_reports_writeback_problems_with_their_keys(tmp_path: Path) -> None:
    config = tmp_path / "ghlsync.yaml"
    config.write_text(
        "writeback:\n"
        "  secret: not-a-whsec\n"
        "  actions: {create_lead: {url: notaurl}}\n"
        "  triggers:\n"
        "    - {event: NoteCreate, action: create_lead}\n"
        "    - {event: ContactTagUpdate, action: move_deal, when: tag_added}\n"
    )
    out = run("validate", "--config", str(config), code=1).output
    assert "writeback.actions.create_lead.url" in out
    config.write_text(config.read_text().replace("url: notaurl", "url: https://h.test/x"))
    out = run("validate", "--config", str(config), code=1).output
    assert "writeback.secret" in out and "whsec_" in out
    assert "writeback.triggers[0].event" in out and "cannot become create_lead" in out
    assert "writeback.triggers[1].prefix" in out


def test_catalog_names_both_directions() -> None:
    found = json.loads(run("catalog", "--json").stdout)
    rows = {row["entity"]: row for row in found["directions"]}
    assert [o["writeback"] for o in rows["contact"]["ghl_to_dripjobs"]] == [
        "create_lead",
        "move_deal",
    ]
    assert "upsert" in rows["contact"]["dripjobs_to_ghl"]
    assert rows["note"]["ghl_to_dripjobs"] == [] and "NoteCreate" in rows["note"]["kept_in_store"]


def test_status_and_dlq_show_write_backs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'ghlsync.db'}"
    monkeypatch.setenv("GHLSYNC_DATABASE_URL", url)
    engine = create_engine(url)
    migrate(engine)
    with begin_immediate(engine) as conn:
        queued = enqueue(
            conn,
            location_id="loc1",
            action="create_lead",
            dedupe_key="k",
            ghl_entity="contact",
            ghl_id="g1",
            data={"email": "a@b.c"},
            url="https://h.test/x",
            now=1.0,
        )
        keep_change(
            conn,
            "loc1",
            "contact",
            "g2",
            event="ContactUpdate",
            detail={"phone": "+1415"},
            reason="DripJobs has no action that updates a customer's fields",
            changed_at=1.0,
            now=1.0,
        )
    (item,) = claim_due(engine, "t", 1, 60, now=2.0)
    mark_dead(engine, item, 422, "refused: 422 bad", now=3.0)
    engine.dispose()
    status = json.loads(run("status", "--json").stdout)
    assert status["writebacks"]["loc1"]["dead"] == 1
    assert status["kept"]["counts"] == {"loc1": 1}
    assert "Write-backs to DripJobs" in run("status").stdout
    listed = json.loads(run("dlq", "list", "--json").stdout)
    assert [e["id"] for e in listed if e.get("kind") == "writeback"] == [queued.id]
    shown = json.loads(run("dlq", "show", queued.id, "--json").stdout)
    assert shown["body"]["type"] == "create_lead" and shown["last_status"] == 422
    assert "replayed write-back" in run("dlq", "replay", queued.id).stdout
    status = json.loads(run("status", "--json").stdout)
    assert status["writebacks"]["loc1"]["pending"] == 1


def test_secret_env_override_reaches_the_config(monkeypatch: pytest.MonkeyPatch) -> None:
    from ghlsync.mapping import load_config

    config = load_config(None, environ={"GHLSYNC_WRITEBACK_SECRET": SECRET})
    assert config.writeback.secret is not None and config.writeback.secret.reveal() == SECRET
    assert SECRET not in repr(config)


def test_preview_ghl_of_a_moved_card_shows_the_move_deal(tmp_path: Path) -> None:
    store = tmp_path / "ghlsync.db"
    engine = create_engine(f"sqlite:///{store}")
    migrate(engine)
    stages = [["Estimate booked", "stg_est"], ["Won", "stg_won"]]
    with engine.begin() as conn:  # the pipelines a sync read from GHL
        conn.execute(
            ghl_pipelines.insert().values(
                location_id="loc1",
                pipelines=json.dumps([{"id": "pl_1", "name": "Sales pipeline", "stages": stages}]),
                fetched_at=0.0,
            )
        )
    engine.dispose()
    config = tmp_path / "ghlsync.yaml"
    config.write_text(
        f"database_url: sqlite:///{store}\n"
        "opportunities: {deal_pipeline: Sales pipeline, deal_stages: {Proposal Approved: Won}}\n"
        "writeback: {actions: {move_deal: {url: 'https://hooks.zapier.test/m/1'}}}\n"
    )
    card = {"type": "OpportunityStageUpdate", "locationId": "loc1", "id": "opp1",
            "contactId": "g123", "pipelineId": "pl_1", "pipelineStageId": "stg_won",
            "status": "open", "timestamp": "2026-12-06T01:00:00.000Z"}  # fmt: skip
    path = tmp_path / "card.json"
    path.write_text(json.dumps(card))
    args = ("preview", "--ghl", str(path), "--json", "--config", str(config))

    fresh = json.loads(run(*args).stdout)  # a throwaway store never read the pipelines
    assert fresh["writebacks"] == [] and "has not read the location's pipelines" in fresh["detail"]
    (move,) = json.loads(run(*args, "--store").stdout)["writebacks"]
    assert (move["action"], move["body"]["data"]["stage"]) == ("move_deal", "Proposal Approved")
