"""The client against the GHL sandbox served over real HTTP on loopback."""

from __future__ import annotations

import pytest

from ghlsync.ghl._client import GHLClient
from ghlsync.ghl._errors import AuthenticationError, NotFoundError, ValidationError
from ghlsync.ghl._tokens import StaticTokens
from ghlsync.sandbox import SandboxServer


def _client(server: SandboxServer, token: str | None = None) -> GHLClient:
    tokens = StaticTokens({server.location_id: token or server.token})
    return GHLClient(base_url=server.url, tokens=tokens, timeout=10)


async def test_contact_lifecycle(sandbox: SandboxServer) -> None:
    loc = sandbox.location_id
    async with _client(sandbox) as ghl:
        created = await ghl.contacts.upsert(loc, {"email": "ann@example.com", "firstName": "Ann"})
        assert created.new is True
        again = await ghl.contacts.upsert(loc, {"email": "ann@example.com", "lastName": "Lee"})
        assert (again.new, again.contact.id) == (False, created.contact.id)
        cid = created.contact.id
        tags = await ghl.contacts.add_tags(loc, cid, ["vip", "lead"])
        assert {"vip", "lead"} <= set(tags)
        fetched = await ghl.contacts.get(loc, cid)
        assert fetched.email == "ann@example.com"
        assert {"vip", "lead"} <= set(fetched.tags or [])
        await ghl.contacts.delete(loc, cid)
        with pytest.raises(NotFoundError):
            await ghl.contacts.delete(loc, cid)
        assert ghl.last_rate(loc) is not None


async def test_tasks_and_notes(sandbox: SandboxServer) -> None:
    loc = sandbox.location_id
    async with _client(sandbox) as ghl:
        contact = (await ghl.contacts.upsert(loc, {"email": "bo@example.com"})).contact
        task = await ghl.tasks.create(
            loc,
            contact.id,
            {"title": "Call", "dueDate": "2026-12-01T10:00:00Z", "completed": False},
        )
        done = await ghl.tasks.complete(loc, contact.id, task.id)
        assert done.completed is True
        assert [t.id for t in await ghl.tasks.list(loc, contact.id)] == [task.id]
        note = await ghl.notes.create(loc, contact.id, {"body": "hello"})
        updated = await ghl.notes.update(loc, contact.id, note.id, {"body": "hello again"})
        assert updated.body == "hello again"
        await ghl.notes.delete(loc, contact.id, note.id)
        assert await ghl.notes.list(loc, contact.id) == []


async def test_list_pages_through_every_contact(sandbox: SandboxServer) -> None:
    loc = sandbox.location_id
    async with _client(sandbox) as ghl:
        made = {
            (await ghl.contacts.create(loc, {"email": f"p{i}@example.com"})).id for i in range(7)
        }
        listed = [c.id async for c in ghl.contacts.list(loc, limit=3)]
    assert sorted(listed) == sorted(made)


async def test_unknown_field_and_bad_token(sandbox: SandboxServer) -> None:
    loc = sandbox.location_id
    async with _client(sandbox) as ghl:
        with pytest.raises(ValidationError):
            await ghl.contacts.create(loc, {"email": "x@example.com", "nickname": "X"})
    async with _client(sandbox, token="not-a-real-token-000000") as ghl:
        with pytest.raises(AuthenticationError):
            await ghl.contacts.upsert(loc, {"email": "x@example.com"})
