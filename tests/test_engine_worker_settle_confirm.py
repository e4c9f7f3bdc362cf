"""A create's confirmation (its GHL id and synced state) is written with the settle of the
work item (SQLite: in its transaction; PostgreSQL: in its statement), not on its own; until
then the ID map says `pending` and the process's ledgers show the confirmed mapping instead
(a child in the same item, or in another item, finds its customer at once)."""

from __future__ import annotations

import httpx2
import sqlalchemy as sa

from ghlsync._clock import FakeClock
from ghlsync.engine.state import _idmap, _syncstate
from ghlsync.engine.state._idmap import IdMapRow
from ghlsync.engine.state._ledger import SettleStates, SqlLedger, shown_mapping
from ghlsync.engine.state._syncstate import SyncState
from tests._engine_kit import steal_lease, work_row
from tests._sandbox import InProcessSandbox
from tests.test_engine_worker_settle_states import _worker, send_task


def _stored(engine: sa.Engine, location: str, source_id: str = "c1") -> IdMapRow | None:
    with engine.connect() as conn:
        return _idmap.get(conn, location, "contact", source_id)


def _is_task_post(request: httpx2.Request) -> bool:
    return request.method == "POST" and request.url.path.endswith("/tasks")


async def test_a_create_is_confirmed_with_the_settle_and_shown_to_the_process_meanwhile(
    engine_store: sa.Engine, engine_clock: FakeClock, sandbox_asgi: InProcessSandbox
) -> None:
    """A task of a new customer: the contact is created, then the task (in the same item)
    finds the contact's GHL id. At that moment the store still says `pending`, and a ledger
    of another item shows the confirmed mapping.
    After the settle, the store holds it and nothing is shown any more."""
    location = sandbox_asgi.location_id
    send_task(engine_store, location, delivery_id="1", first_name="Ann")
    seen: dict[str, object] = {}

    def look(request: httpx2.Request) -> None:
        if _is_task_post(request):
            seen["stored"] = _stored(engine_store, location)
            seen["shown"] = shown_mapping(engine_store, location, "contact", "c1")
            seen["path"] = request.url.path

    worker, client = _worker(engine_store, engine_clock, sandbox_asgi, look)
    assert await worker.run_once() == 1
    await client.aclose()
    contacts = list(sandbox_asgi.state.location(location).contacts)  # type: ignore[union-attr]
    assert len(contacts) == 1
    assert seen["path"] == f"/contacts/{contacts[0]}/tasks"  # the child found its customer
    stored, shown = seen["stored"], seen["shown"]
    assert isinstance(stored, IdMapRow)
    assert stored.state == "pending"  # not committed on its own
    assert isinstance(shown, IdMapRow)
    assert (shown.state, shown.ghl_id) == ("confirmed", contacts[0])
    after = _stored(engine_store, location)
    assert after is not None and (after.state, after.ghl_id) == ("confirmed", contacts[0])
    assert shown_mapping(engine_store, location, "contact", "c1") is None
    assert work_row(engine_store, "t1", location)["status"] == "done"


async def test_a_confirmation_is_written_with_the_retry_when_the_child_fails(
    engine_store: sa.Engine, engine_clock: FakeClock, sandbox_asgi: InProcessSandbox
) -> None:
    """The contact is created, then the task's create fails (500): the item goes back for a
    retry, its settle writes the confirmation, and the retry creates only the task."""
    location = sandbox_asgi.location_id
    send_task(engine_store, location, delivery_id="1", first_name="Ann")
    creates: list[str] = []
    fail = [True]

    def fail_the_task_once(request: httpx2.Request) -> httpx2.Response | None:
        path = request.url.path
        if request.method == "POST" and path in ("/contacts/", "/contacts/upsert"):
            creates.append(path)
        if _is_task_post(request) and fail[0]:
            fail[0] = False
            return httpx2.Response(500, json={"message": "down"})
        return None

    worker, client = _worker(engine_store, engine_clock, sandbox_asgi, fail_the_task_once)
    assert await worker.run_once() == 1
    assert work_row(engine_store, "t1", location)["status"] == "pending"  # a retry
    row = _stored(engine_store, location)
    assert row is not None and row.state == "confirmed"  # written with the retry's settle
    assert shown_mapping(engine_store, location, "contact", "c1") is None
    engine_clock.advance(3600)
    assert await worker.run_once() == 1
    await client.aclose()
    assert work_row(engine_store, "t1", location)["status"] == "done"
    assert len(creates) == 1  # the contact was created once
    assert len(sandbox_asgi.state.location(location).contacts) == 1  # type: ignore[union-attr]


async def test_a_confirmation_is_not_written_when_another_worker_took_the_item_over(
    engine_store: sa.Engine, engine_clock: FakeClock, sandbox_asgi: InProcessSandbox
) -> None:
    """The lease is lost while the task is created: the settle writes nothing, the ID map
    keeps `pending` (the other worker finds the contact by its email, as after a
    crash) and the process stops showing the confirmed mapping."""
    location = sandbox_asgi.location_id
    send_task(engine_store, location, delivery_id="1", first_name="Ann")

    def steal_the_lease(request: httpx2.Request) -> None:
        if _is_task_post(request):
            steal_lease(engine_store, "t1")

    worker, client = _worker(engine_store, engine_clock, sandbox_asgi, steal_the_lease)
    assert await worker.run_once() == 1
    await client.aclose()
    row = _stored(engine_store, location)
    assert row is not None
    assert row.state == "pending"
    assert shown_mapping(engine_store, location, "contact", "c1") is None


async def test_a_shown_mapping_is_read_by_other_ledgers_and_counted_among_owners(
    engine_store: sa.Engine, engine_clock: FakeClock
) -> None:
    """`lookup`, `load` and `owners` of another ledger of the engine see a confirmation kept
    by an item; `release` ends it, and a `forget` by the item drops it at once."""
    states = SettleStates()
    mine = SqlLedger(engine_store, "loc1", engine_clock, states)
    other = SqlLedger(engine_store, "loc1", engine_clock)
    await mine.mark_pending("contact", "c1", {"email": "ann@x.io"})
    synced = SyncState("h1", 1.0, {"body": {"firstName": "Ann"}})
    await mine.confirm("contact", "c1", "ghl-1", synced)
    assert _stored(engine_store, "loc1") is not None
    assert _stored(engine_store, "loc1").state == "pending"  # type: ignore[union-attr]
    found = await other.lookup("contact", "c1")
    assert found is not None and (found.state, found.ghl_id) == ("confirmed", "ghl-1")
    row, state = await other.load("contact", "c1")
    assert row == found and state == synced
    assert await other.owners("contact", "ghl-1") == ["c1"]
    assert await SqlLedger(engine_store, "loc2", engine_clock).lookup("contact", "c1") is None
    with engine_store.begin() as conn:
        states.write_in(conn)
    states.release()
    assert shown_mapping(engine_store, "loc1", "contact", "c1") is None
    stored = _stored(engine_store, "loc1")
    assert stored is not None and (stored.state, stored.ghl_id) == ("confirmed", "ghl-1")
    row, state = await other.load("contact", "c1")
    assert row == stored and state == synced

    again = SettleStates()
    ledger = SqlLedger(engine_store, "loc1", engine_clock, again)
    await ledger.confirm("contact", "c2", "ghl-2", synced)
    assert shown_mapping(engine_store, "loc1", "contact", "c2") is not None
    await ledger.forget("contact", "c2")
    assert shown_mapping(engine_store, "loc1", "contact", "c2") is None
    assert len(again) == 0


async def test_a_kept_state_is_encoded_when_written_as_of_the_time_it_was_kept(
    engine_store: sa.Engine, engine_clock: FakeClock
) -> None:
    """A new customer's unfinished confirmation, replaced by its state after the tag call
    before the settle, is never encoded; the row written is the last state, synced at the
    time it was recorded (not at the settle)."""
    encoded: list[str] = []

    class Noted:
        def __str__(self) -> str:
            encoded.append("encoded")
            return "noted"

    states = SettleStates()
    ledger = SqlLedger(engine_store, "loc1", engine_clock, states)
    await ledger.mark_pending("contact", "c1", {"email": "ann@x.io"})
    await ledger.confirm("contact", "c1", "ghl-1", SyncState("", 1.0, {"tags": Noted()}))
    engine_clock.advance(60)
    final = SyncState("h2", 2.0, {"body": {"firstName": "Ann"}, "tags": ["a"]})
    await ledger.record("contact", "c1", final)
    recorded_at = engine_clock.now()
    engine_clock.advance(60)
    with engine_store.begin() as conn:
        states.write_in(conn)
    states.release()
    assert encoded == []
    with engine_store.connect() as conn:
        synced_at = conn.execute(sa.text("SELECT synced_at FROM sync_state")).scalar_one()
        assert _syncstate.get(conn, "loc1", "contact", "c1") == final
    assert synced_at == recorded_at
    stored = _stored(engine_store, "loc1")
    assert stored is not None and (stored.state, stored.ghl_id) == ("confirmed", "ghl-1")
