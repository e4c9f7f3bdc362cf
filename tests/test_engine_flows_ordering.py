"""Per-field ordering of contacts and one sync per entity at a time (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from ghlsync.engine.flows._inflight import entity_lock
from ghlsync.engine.flows.to_ghl._contact_stamps import FLOOR, advanced, fresh, stored
from ghlsync.engine.state._syncstate import SyncState
from ghlsync.mapping import MappedEntity
from tests._engine_flows_kit import CUSTOMER, Flow

T10 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def contact(minute: int | None, **parts: object) -> MappedEntity:
    stamp = None if minute is None else T10.replace(minute=minute)
    return MappedEntity("contact", "C1", "upsert", source_updated_at=stamp, **parts)  # type: ignore[arg-type]


def state(stamps: dict[str, float]) -> SyncState:
    return SyncState("h", max(stamps.values()), {"stamps": stamps})


def at(minute: int) -> float:
    return T10.replace(minute=minute).timestamp()


# ------------------------------------------------------------------------------- pure rules


def test_only_parts_not_older_than_their_stamp_are_applied() -> None:
    known = state({"body:lastName": at(10), "body:phone": at(1), "tags:deal:": at(10)})
    late = contact(
        5,
        body={"lastName": "Reyes", "phone": "+1", "email": "a@x.io"},
        tags_add=("deal:estimate", "lead"),
        tags_remove_prefixes=("deal:",),
    )
    kept = fresh(late, known)
    assert kept is not None
    assert kept.body == {"phone": "+1", "email": "a@x.io"}  # lastName is newer in GHL
    assert (kept.tags_add, kept.tags_remove_prefixes) == (("lead",), ())
    tie = fresh(contact(10, body={"lastName": "Okafor"}), known)
    assert tie is not None and tie.body == {"lastName": "Okafor"}  # ties: arrival order


def test_an_entity_older_in_everything_it_carries_is_stale() -> None:
    known = state({"body:lastName": at(10), "body:email": at(10)})
    assert fresh(contact(5, body={"lastName": "Reyes", "email": "a@x.io"}), known) is None
    untimed = contact(None, body={"lastName": "Reyes"})
    assert fresh(untimed, known) is untimed  # no timestamp: arrival order


def test_stamps_only_move_forward_and_an_old_state_gives_a_floor() -> None:
    known = state({"body:lastName": at(10)})
    moved = advanced(contact(5, body={"lastName": "R", "email": "a@x.io"}), known)
    assert moved == {"body:lastName": at(10), "body:email": at(5)}
    assert advanced(contact(None, body={"email": "b@x.io"}), known) == known.snapshot["stamps"]
    legacy = SyncState("h", at(10), {"body": {"lastName": "Okafor"}})  # before per-field stamps
    assert stored(legacy) == {FLOOR: at(10)}
    assert fresh(contact(5, body={"lastName": "Reyes"}), legacy) is None


async def test_one_sync_per_entity_at_a_time_others_run_freely() -> None:
    order: list[str] = []

    async def hold(name: str, key: str) -> None:
        async with entity_lock("L", "contact", key):
            order.append(f"{name}+")
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            order.append(f"{name}-")

    await asyncio.gather(hold("a", "C1"), hold("b", "C1"), hold("c", "C2"))
    assert order.index("a-") < order.index("b+")  # same contact: one after the other
    assert order.index("c+") < order.index("a-")  # another contact: not held up


# --------------------------------------------------------------------------- through GHL


async def test_a_late_copy_of_a_customer_in_a_task_does_not_roll_it_back(flow: Flow) -> None:
    okafor = {**CUSTOMER, "last_name": "Okafor"}
    await flow.sync("customer.updated", **{**okafor, "updated_at": "2026-12-01T10:10:00Z"})
    before = len(flow.requests())
    newer_phone = {  # a task whose Zap carries only the email and a phone changed at 10:20
        "customer_id": "C1",
        "email": "ann@example.com",
        "phone": "+1 415-555-0000",
        "task_id": "T1",
        "task_title": "Call",
        "updated_at": "2026-12-01T10:20:00Z",
    }
    outs = await flow.sync("task.created", **newer_phone)
    # A task stamped 10:05 carrying the customer as it was before the rename.
    stale = {
        **CUSTOMER,
        "task_id": "T2",
        "task_title": "Quote",
        "updated_at": "2026-12-01T10:05:00Z",
    }
    late_task = await flow.sync("task.created", **stale)
    late = await flow.sync(
        "customer.updated", **{**okafor, "city": "Austin", "updated_at": "2026-12-01T10:15:00Z"}
    )

    [contact] = flow.records("contacts")
    assert (contact["lastName"], contact["phone"]) == ("Okafor", "+14155550000")
    assert contact["city"] == "Austin"  # the older event still fills what nobody wrote since
    assert [o.action for o in outs] == ["updated", "created"]
    assert [(o.action, o.calls) for o in late_task] == [("skipped", 0), ("created", 1)]
    assert late[0].action == "updated"
    puts = [r for r in flow.requests()[before:] if r[0] == "PUT"]
    assert len(puts) == 2  # the task's phone, then the late event's city: nothing else


async def test_same_content_with_a_newer_stamp_costs_no_call_but_counts(flow: Flow) -> None:
    await flow.sync("customer.updated", **CUSTOMER, updated_at="2026-12-01T10:00:00Z")
    before = len(flow.requests())
    [same] = await flow.sync("customer.updated", **CUSTOMER, updated_at="2026-12-01T10:20:00Z")
    [older] = await flow.sync(
        "customer.updated",
        **{**CUSTOMER, "last_name": "Reyes", "updated_at": "2026-12-01T10:10:00Z"},
    )

    assert (same.action, same.calls) == ("skipped", 0)
    assert (older.action, older.calls) == ("skipped", 0)  # 10:20 said "Lee": Reyes is stale
    assert len(flow.requests()) == before
    [contact] = flow.records("contacts")
    assert contact["lastName"] == "Lee"
