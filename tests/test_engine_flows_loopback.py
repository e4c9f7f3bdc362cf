"""Over real HTTP on loopback: the sandbox's "timeout" fault (write applied, answer lost)."""

from __future__ import annotations

import time
from typing import Any

import httpx2
import pytest
import sqlalchemy as sa

from ghlsync.ghl._errors import OutcomeUnknownError
from ghlsync.sandbox import SandboxServer
from tests._engine_flows_kit import CUSTOMER, _flow, make_client


async def test_timeout_fault_on_create_is_resolved_without_a_second_contact(
    flows_store: sa.Engine, sandbox: SandboxServer
) -> None:
    admin = httpx2.Client(base_url=sandbox.url)
    client = make_client(sandbox.url, sandbox.token, sandbox.location_id, timeout=0.3)
    try:
        flow = _flow(flows_store, sandbox.state, client, sandbox.location_id, sandbox.calendar_id)
        admin.put("/_sandbox/faults", json={"timeout": 1.0, "timeout_seconds": 0.5})
        with pytest.raises(OutcomeUnknownError):
            await flow.sync("customer.created", **CUSTOMER)
        admin.put("/_sandbox/faults", json={})

        [out] = await flow.sync("customer.created", **CUSTOMER)

        entries = _log_once_answered(admin)
        assert [e["path"] for e in entries].count("/contacts/upsert") == 1
        assert any(e["path"] == "/contacts/search/duplicate" for e in entries)
        contacts = list(sandbox.state.locations[sandbox.location_id].contacts.values())
        assert [c["id"] for c in contacts] == [out.ghl_id]
        assert contacts[0]["tags"] == ["source:google"]
    finally:
        await client.aclose()
        admin.close()


def _log_once_answered(admin: httpx2.Client) -> list[dict[str, Any]]:
    """The call log, once the delayed (timed-out) upsert has been answered and logged."""
    for _ in range(500):
        entries: list[dict[str, Any]] = admin.get("/_sandbox/requests").json()
        if any(e["path"] == "/contacts/upsert" for e in entries):
            return entries
        time.sleep(0.01)
    raise AssertionError("the sandbox never logged the delayed upsert")
