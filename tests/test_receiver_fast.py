"""The receive path's shortcuts keep its contract.

- `LoopCommitter` (SQLite): the loop commits a turn's deliveries together and answers each
  after its commit; a failing item stays alone; when another connection holds the write lock
  the batch waits in the writer thread (the loop keeps serving) and still commits.
- `GhlsyncApp`: DripJobs deliveries reach the receiver without the middleware stack, with
  the same path parameters; an unexpected failure is the JSON 500; other requests still go
  through FastAPI.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
import sqlalchemy as sa
from starlette.requests import Request
from starlette.responses import Response

from ghlsync.server import serve_in_thread
from ghlsync.server._commit import CommitterClosed, LoopCommitter
from ghlsync.server._fast import GhlsyncApp
from ghlsync.server._responses import json_response
from ghlsync.server.guard._conn import _CoalescedWrites
from ghlsync.store import create_engine
from ghlsync.store._engine import begin_immediate_on

scratch = sa.MetaData()
items = sa.Table("loop_items", scratch, sa.Column("n", sa.Integer, primary_key=True))


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[sa.Engine]:
    engine = create_engine(f"sqlite:///{tmp_path / 'loop.db'}")
    scratch.create_all(engine)
    yield engine
    engine.dispose()


def insert_unless_13(conn: sa.Connection, n: int) -> bool:
    if n == 13:
        raise ValueError("thirteen is refused")
    conn.execute(sa.insert(items).values(n=n))
    return True


def insert_many(conn: sa.Connection, ns: list[int]) -> list[bool]:
    """As `accept_many` runs: on the driver's cursor, in the caller's transaction."""
    if 13 in ns:
        raise ValueError("thirteen is refused")
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.executemany("INSERT INTO loop_items (n) VALUES (?)", [(n,) for n in ns])
    finally:
        cursor.close()
    return [True] * len(ns)


def stored(engine: sa.Engine) -> set[int]:
    with engine.connect() as conn:
        return set(conn.execute(sa.select(items.c.n)).scalars())


async def test_loop_committer_commits_each_and_isolates_a_failure(engine: sa.Engine) -> None:
    committer = LoopCommitter(engine, insert_unless_13, accept_many=insert_many)
    try:
        results = await asyncio.gather(
            *(committer.submit(n) for n in range(100)), return_exceptions=True
        )
    finally:
        committer.close()
    assert isinstance(results[13], ValueError)
    assert all(r is True for i, r in enumerate(results) if i != 13)
    assert stored(engine) == set(range(100)) - {13}
    with pytest.raises(CommitterClosed):
        await committer.submit(200)


async def test_the_loop_commits_every_batch_through_accept_many_in_a_driver_transaction(
    engine: sa.Engine,
) -> None:
    calls: list[tuple[str, list[int]]] = []

    def many(conn: sa.Connection, ns: list[int]) -> list[bool]:
        calls.append((threading.current_thread().name, list(ns)))
        return insert_many(conn, ns)

    def one(conn: sa.Connection, n: int) -> bool:
        raise AssertionError("a batch committed on the loop goes through accept_many")

    statements: list[str] = []
    committer = LoopCommitter(engine, one, accept_many=many)
    try:
        assert await committer.submit(1) is True  # a batch of one
        sa.event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
        assert await asyncio.gather(*(committer.submit(n) for n in (2, 3, 4))) == [True] * 3
    finally:
        committer.close()
    here = threading.current_thread().name
    assert calls == [(here, [1]), (here, [2, 3, 4])]
    assert statements == []  # BEGIN IMMEDIATE and COMMIT went to the driver, not SQLAlchemy
    assert stored(engine) == {1, 2, 3, 4}


async def test_a_held_write_lock_sends_the_batch_to_the_thread_and_the_loop_runs_on(
    engine: sa.Engine,
) -> None:
    threads: dict[int, str] = {}

    def insert_noting_thread(conn: sa.Connection, n: int) -> bool:
        threads[n] = threading.current_thread().name
        return insert_unless_13(conn, n)

    committer = LoopCommitter(engine, insert_noting_thread)
    holder = engine.connect()
    held = begin_immediate_on(holder)  # another writer holds the lock
    release = threading.Event()

    def hold_until_released() -> None:
        release.wait(10)
        held.rollback()
        holder.close()

    ticks = 0
    turned = asyncio.Event()

    async def tick() -> None:
        nonlocal ticks
        while not release.is_set():
            ticks += 1
            if ticks == 5:
                turned.set()
            await asyncio.sleep(0.01)

    holding = asyncio.create_task(asyncio.to_thread(hold_until_released))
    ticking = asyncio.create_task(tick())
    try:
        submitted = asyncio.gather(*(committer.submit(n) for n in range(5)))
        await turned.wait()  # the loop keeps turning while the batch waits for the lock
        assert not submitted.done()
        assert stored(engine) == set()
        release.set()
        assert await submitted == [True] * 5
        assert all(threads[n].startswith("ghlsync-group-commit") for n in range(5))
        assert await committer.submit(99) is True  # the thread is idle: the loop commits again
        assert threads[99] == threading.current_thread().name
    finally:
        release.set()
        await holding
        await ticking
        committer.close()
    assert stored(engine) == {*range(5), 99}


async def echo(request: Request) -> Response:
    params = dict(request.path_params)
    if params.get("event") == "boom":
        raise RuntimeError("secret detail")
    return json_response(202, {"params": params, "body": (await request.body()).decode()})


@pytest.fixture
def app_url() -> Iterator[str]:
    app = GhlsyncApp(docs_url=None, redoc_url=None, openapi_url=None)
    app.serve_deliveries(echo)

    async def other() -> Response:
        return json_response(200, {"through": "fastapi"})

    app.add_api_route("/hooks/dripjobs/{event}", other, methods=["GET"])
    with serve_in_thread(app) as url:
        yield url


def test_deliveries_reach_the_handler_with_their_path_params(app_url: str) -> None:
    one = httpx2.post(f"{app_url}/hooks/dripjobs/customer.created", content=b"x")
    two = httpx2.post(f"{app_url}/hooks/dripjobs/acme/customer.created", content=b"y")
    assert one.json() == {"params": {"event": "customer.created"}, "body": "x"}
    assert two.json()["params"] == {"connection": "acme", "event": "customer.created"}


def test_other_requests_go_through_fastapi(app_url: str) -> None:
    assert httpx2.get(f"{app_url}/hooks/dripjobs/customer.created").json() == {"through": "fastapi"}
    for path in ("/hooks/dripjobs/", "/hooks/dripjobs/a/b/c", "/hooks/dripjobs//x"):
        assert httpx2.post(f"{app_url}{path}").status_code == 404, path


def test_a_failing_delivery_handler_is_the_json_500(app_url: str) -> None:
    answer = httpx2.post(f"{app_url}/hooks/dripjobs/boom")
    assert (answer.status_code, answer.json()["error"]) == (500, "internal_error")
    assert "secret detail" not in answer.text


async def test_coalesced_writes_keep_order_and_are_sent_before_close() -> None:
    received: asyncio.Queue[bytes] = asyncio.Queue()

    async def peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await received.put(await reader.read())  # everything, until the other side closes
        writer.close()

    server = await asyncio.start_server(peer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
    corked = _CoalescedWrites(transport, loop)
    corked.write(b"HTTP/1.1 202 Accepted\r\n\r\n")
    corked.write(b"")
    corked.write(b'{"status":"accepted"}')
    await asyncio.sleep(0)  # the end of the turn sends them
    corked.write(b"+last")
    corked.close()  # sends what is pending first
    assert await received.get() == b'HTTP/1.1 202 Accepted\r\n\r\n{"status":"accepted"}+last'
    assert corked.is_closing()
    server.close()
    await server.wait_closed()
