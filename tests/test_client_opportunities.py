"""`client.opportunities`, `client.workflows`, `client.campaigns`: the requests they send."""

from __future__ import annotations

import json

import pytest

from ghlsync.ghl._errors import ValidationError
from tests.test_client_request import LOC, make_client, ok, scripted


async def test_pipelines_parse_stages_in_order() -> None:
    stages = [{"id": "s1", "name": "New", "position": 0}, {"id": "s2", "name": "Won"}]
    handler, seen = scripted(ok({"pipelines": [{"id": "p1", "name": "Sales", "stages": stages}]}))
    client, _ = make_client(handler)
    async with client:
        (pipeline,) = await client.opportunities.pipelines(LOC)
    assert [s.name for s in pipeline.stages] == ["New", "Won"]
    assert seen[0].url.path == "/opportunities/pipelines"
    assert seen[0].url.params["locationId"] == LOC


async def test_upsert_fills_location_and_reads_new() -> None:
    answer = {"opportunity": {"id": "o1", "pipelineStageId": "s2"}, "new": True}
    handler, seen = scripted(ok(answer))
    client, _ = make_client(handler)
    body = {"pipelineId": "p1", "contactId": "c1", "status": "open", "monetaryValue": 1250.5}
    async with client:
        result = await client.opportunities.upsert(LOC, body)
    assert (result.opportunity.id, result.opportunity.pipeline_stage_id, result.new) == (
        "o1",
        "s2",
        True,
    )
    sent = json.loads(seen[0].content)
    assert sent == {**body, "locationId": LOC}
    assert (seen[0].method, seen[0].url.path) == ("POST", "/opportunities/upsert")


async def test_upsert_refuses_an_unknown_status_without_sending() -> None:
    handler, seen = scripted()
    client, _ = make_client(handler)
    async with client:
        with pytest.raises(ValidationError, match="status"):
            await client.opportunities.upsert(LOC, {"pipelineId": "p1", "status": "done"})
    assert seen == []


async def test_status_search_and_delete_requests() -> None:
    handler, seen = scripted(
        ok({"succeded": True}), ok({"opportunities": [], "meta": {}}), ok({"succeded": True})
    )
    client, _ = make_client(handler)
    async with client:
        await client.opportunities.set_status(LOC, "o1", "lost", lost_reason_id="r1")
        await client.opportunities.search(LOC, contact_id="c1", pipeline_id="p1")
        await client.opportunities.delete(LOC, "o1")
    assert (seen[0].method, seen[0].url.path) == ("PUT", "/opportunities/o1/status")
    assert json.loads(seen[0].content) == {"status": "lost", "lostReasonId": "r1"}
    assert dict(seen[1].url.params) == {"location_id": LOC, "contact_id": "c1", "pipeline_id": "p1"}
    assert (seen[2].method, seen[2].url.path) == ("DELETE", "/opportunities/o1")


async def test_workflows_and_campaigns_list_by_location() -> None:
    handler, seen = scripted(
        ok({"workflows": [{"id": "w1", "name": "Nurture"}]}),
        ok({"campaigns": [{"id": "k1", "name": "Spring"}]}),
    )
    client, _ = make_client(handler)
    async with client:
        workflows = await client.workflows.list(LOC)
        campaigns = await client.campaigns.list(LOC, status="published")
    assert [w["name"] for w in workflows] == ["Nurture"]
    assert [c["id"] for c in campaigns] == ["k1"]
    assert seen[0].url.path == "/workflows/"
    assert dict(seen[1].url.params) == {"locationId": LOC, "status": "published"}
