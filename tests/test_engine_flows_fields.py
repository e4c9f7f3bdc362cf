"""Custom fields by key: resolved to ids through the custom-fields API, cached in the store."""

from __future__ import annotations

from typing import cast

import pytest

from ghlsync._clock import FakeClock
from ghlsync.engine.flows.to_ghl._customfields import REFRESH_AFTER, UnknownCustomFieldError
from ghlsync.engine.flows.to_ghl._dispatch import sync_event
from ghlsync.mapping import MappedEntity, MappedEvent
from tests._engine_flows_kit import Flow

FIELDS = "/locations/loc_sandbox/customFields"


def _contact(values: dict[str, str], source_id: str = "C1") -> MappedEvent:
    entity = MappedEntity(
        "contact",
        source_id,
        "upsert",
        body={"email": f"{source_id.lower()}@example.com"},
        custom_fields=values,
    )
    return MappedEvent("customer.updated", [entity])


async def _define(flow: Flow, name: str) -> str:
    assert flow.ctx.client is not None
    answer = await flow.ctx.client.request(
        "POST", FIELDS, key="loc_sandbox", version="2021-07-28",
        json={"name": name, "dataType": "TEXT"},
    )  # fmt: skip
    return str(answer["customField"]["id"])


async def test_custom_field_by_key_is_written_by_id_and_cached(flow: Flow) -> None:
    field_id = await _define(flow, "Roof Type")

    [created] = await sync_event(flow.ctx, _contact({"contact.roof_type": "metal"}))
    [updated] = await sync_event(flow.ctx, _contact({"contact.roof_type": "slate"}))
    [other] = await sync_event(flow.ctx, _contact({"contact.roof_type": "tile"}, "C2"))

    assert flow.requests().count(("GET", FIELDS)) == 1  # the cache served the rest
    assert (updated.action, updated.calls) == ("updated", 1)
    contacts = {c["id"]: c for c in flow.records("contacts")}
    assert contacts[created.ghl_id or ""]["customFields"] == [{"id": field_id, "value": "slate"}]
    assert contacts[other.ghl_id or ""]["customFields"] == [{"id": field_id, "value": "tile"}]


async def test_unknown_custom_field_key_is_a_clear_error_and_refetches_rarely(
    flow: Flow,
) -> None:
    await _define(flow, "Roof Type")
    clock = cast(FakeClock, flow.ctx.clock)

    with pytest.raises(UnknownCustomFieldError, match=r"contact\.roof_colour.*contact\.roof_type"):
        await sync_event(flow.ctx, _contact({"contact.roof_colour": "red"}))
    with pytest.raises(UnknownCustomFieldError):
        await sync_event(flow.ctx, _contact({"contact.roof_colour": "red"}))
    assert flow.requests().count(("GET", FIELDS)) == 1
    assert flow.records("contacts") == []  # nothing half-written

    await _define(flow, "Roof Colour")
    clock.advance(REFRESH_AFTER)
    [out] = await sync_event(flow.ctx, _contact({"contact.roof_colour": "red"}))

    assert out.action == "created"
    assert flow.requests().count(("GET", FIELDS)) == 2
