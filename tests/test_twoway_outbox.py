"""The write-back outbox: signed per the Standard Webhooks spec, at-least-once with the same
webhook-id on every retry, Retry-After honoured, dead letters after the limit, replay."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from ghlsync.dripjobs._writeback import writeback_body, writeback_headers
from ghlsync.engine.outbox._store import enqueue, replay
from ghlsync.store import begin_immediate
from ghlsync.store._tables_twoway import writeback_outbox
from tests._twoway_kit import HOOK, SECRET, TwoWay, spec_verify, with_writeback

# The Standard Webhooks specification's own example (spec/standard-webhooks.md and the
# reference libraries' tests): this secret, id, timestamp and payload sign to this value.
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_PAYLOAD = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_headers_match_the_spec_vector() -> None:
    headers = writeback_headers(SPEC_SECRET, SPEC_ID, SPEC_TIMESTAMP, SPEC_PAYLOAD)
    assert headers["webhook-signature"] == SPEC_SIGNATURE
    assert headers["webhook-id"] == SPEC_ID
    assert headers["webhook-timestamp"] == str(SPEC_TIMESTAMP)
    assert spec_verify(SPEC_SECRET, headers, SPEC_PAYLOAD, SPEC_TIMESTAMP)
    assert not spec_verify(SPEC_SECRET, headers, SPEC_PAYLOAD + b" ", SPEC_TIMESTAMP)
    assert not spec_verify(SPEC_SECRET, headers, SPEC_PAYLOAD, SPEC_TIMESTAMP + 301)


def test_body_is_the_contract_shape() -> None:
    body = json.loads(writeback_body("create_lead", "wb_1", 0.0, {"email": "a@b.c", "phone": ""}))
    assert body == {
        "type": "create_lead",
        "id": "wb_1",
        "timestamp": "1970-01-01T00:00:00.000Z",
        "data": {"email": "a@b.c"},
    }


def queue_one(tw: TwoWay, key: str = "create_lead:g1") -> str:
    with begin_immediate(tw.engine) as conn:
        queued = enqueue(
            conn,
            location_id="loc1",
            action="create_lead",
            dedupe_key=key,
            ghl_entity="contact",
            ghl_id="g1",
            data={"email": "a@b.c", "ghl_contact_id": "g1"},
            url=HOOK + "create_lead",
            now=tw.clock.now(),
        )
    return queued.id


def row(tw: TwoWay, writeback_id: str) -> dict[str, object]:
    with tw.engine.connect() as conn:
        found = conn.execute(
            sa.select(writeback_outbox).where(writeback_outbox.c.id == writeback_id)
        )
        return dict(found.one()._mapping)


async def test_retries_keep_the_webhook_id_and_honour_retry_after(tw: TwoWay) -> None:
    writeback_id = queue_one(tw)
    tw.hook.faults = [429, 500, "timeout"]
    assert await tw.sender.drain_once() == 1
    first = row(tw, writeback_id)
    assert first["status"] == "pending" and first["last_status"] == 429
    assert first["available_at"] == tw.clock.now() + 2  # Retry-After: 2
    assert await tw.sender.drain_once() == 0  # not due yet
    for _ in range(3):
        tw.clock.advance(120)
        await tw.sender.drain_once()
    assert row(tw, writeback_id)["status"] == "delivered"
    assert tw.hook.attempts == [writeback_id] * 4
    assert len(tw.hook.applied) == 1


async def test_a_refusal_is_a_dead_letter_and_replay_sends_the_same_id(tw: TwoWay) -> None:
    writeback_id = queue_one(tw)
    tw.hook.faults = [422]
    await tw.sender.drain_once()
    dead = row(tw, writeback_id)
    assert dead["status"] == "dead" and "422" in str(dead["last_error"])
    assert replay(tw.engine, writeback_id, now=tw.clock.now())
    await tw.sender.drain_once()
    assert row(tw, writeback_id)["status"] == "delivered"
    assert list(tw.hook.applied) == [writeback_id]


async def test_dead_after_the_attempt_limit(tw: TwoWay) -> None:
    tw.reconfigure(with_writeback(tw.config, max_attempts=3))
    writeback_id = queue_one(tw)
    tw.hook.faults = [503] * 10
    for _ in range(5):
        await tw.sender.drain_once()
        tw.clock.advance(600)
    dead = row(tw, writeback_id)
    assert dead["status"] == "dead" and dead["attempts"] == 3
    assert "gave up after 3 attempts" in str(dead["last_error"])
    assert tw.hook.applied == {}


async def test_a_sender_that_died_mid_post_resends_the_same_id(tw: TwoWay) -> None:
    writeback_id = queue_one(tw)
    tw.sender._on_sent = _die  # the POST went out; the process "dies" before recording it
    with pytest.raises(Killed):
        await tw.sender.drain_once()
    assert row(tw, writeback_id)["status"] == "sending"
    tw.sender._on_sent = None
    tw.clock.advance(61)  # the lease expires
    await tw.sender.drain_once()
    assert row(tw, writeback_id)["status"] == "delivered"
    ids = [r["headers"]["webhook-id"] for r in tw.hook.received]
    assert ids == [writeback_id, writeback_id] and list(tw.hook.applied) == [writeback_id]


class Killed(Exception):
    """Stands in for the process dying between "POST sent" and "recorded"."""


def _die(_item: object) -> None:
    raise Killed("killed between POST sent and recorded")


def test_secret_is_checked() -> None:
    assert SECRET.startswith("whsec_")


async def test_a_running_sender_sends_at_once_when_woken(tw: TwoWay) -> None:
    import asyncio

    tw.sender.poll_interval = 3600.0  # only the wake-up can make it send
    stop = asyncio.Event()
    running = asyncio.ensure_future(tw.sender.run(stop))
    for _ in range(50):  # until the sender idles
        await asyncio.sleep(0.01)
    writeback_id = queue_one(tw)
    tw.sender.wake()
    for _ in range(200):
        if row(tw, writeback_id)["status"] == "delivered":
            break
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(running, 5)
    assert row(tw, writeback_id)["status"] == "delivered"


async def test_an_update_never_overtakes_the_create_of_its_record(tw: TwoWay) -> None:
    with begin_immediate(tw.engine) as conn:
        common: dict[str, object] = {
            "location_id": "loc1",
            "ghl_entity": "appointment",
            "ghl_id": "a1",
            "data": {"ghl_appointment_id": "a1", "email": "a@b.c"},
            "now": tw.clock.now(),
        }
        create = enqueue(
            conn, action="create_appointment_request", dedupe_key="c", url=HOOK + "c", **common
        )  # type: ignore[arg-type]
        update = enqueue(
            conn, action="update_appointment", dedupe_key="u", url=HOOK + "u", order=1, **common
        )  # type: ignore[arg-type]
    tw.hook.faults = [503]
    await tw.sender.drain_once()
    assert tw.hook.attempts == [create.id]  # the update waits behind the failed create
    assert row(tw, update.id)["status"] == "pending"
    tw.clock.advance(600)
    await tw.sender.drain_once()
    await tw.sender.drain_once()
    assert tw.hook.attempts == [create.id, create.id, update.id]
    assert list(tw.hook.applied) == [create.id, update.id]
