"""Wake idle workers on PostgreSQL with `LISTEN/NOTIFY` instead of polling.

`accept` calls `notify_work(conn, location_id)` in the receiver's transaction; PostgreSQL
delivers the notification only when that transaction commits (never for a rollback), so a
worker woken by it always finds the work. A notification is sent once per location per
transaction: the receiver commits deliveries in groups, and one wake-up per group is enough.

`listen_for_work(url, on_work)` holds one dedicated connection per worker process, LISTENs on
`ghlsync_work` and calls `on_work(location_id)` for each notification. It reconnects with
backoff when the connection drops and calls `on_work(None)` after every (re)connect, because
notifications sent while nobody listened are lost for good. With `skip(pid)`, notifications
sent by those server processes are passed over: a worker already woken in its own process by
the commit that sent them (`Worker`) needs no second wake-up.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

__all__ = ["CHANNEL", "listen_for_work", "notify_work", "supports_notify"]

CHANNEL = "ghlsync_work"
_NOTIFIED = "ghlsync.engine.notified"  # conn.info: (transaction, locations already notified)
_NOTIFY = sa.text("SELECT pg_notify(:channel, :location)")
_NOTIFY_DRIVER = "SELECT pg_notify(%s, %s)"
_RECONNECT_MAX = 30.0

_log = logging.getLogger("ghlsync.engine")


def supports_notify(engine: sa.Engine) -> bool:
    """True on PostgreSQL (the only store with LISTEN/NOTIFY)."""
    return engine.dialect.name == "postgresql"


def notify_work(conn: sa.Connection, location_id: str, cursor: Any = None) -> None:
    """Queue a wake-up for `location_id`, sent when the caller's transaction commits.

    A no-op on SQLite, and for a location already notified in this transaction. With
    `cursor` (a psycopg cursor of `conn`), it runs there: inside the group commit's pipeline
    it is queued with the batch's statements instead of costing a round trip of its own.
    """
    if conn.dialect.name != "postgresql":
        return
    transaction = conn.get_transaction()
    seen: Any = conn.info.get(_NOTIFIED)
    if seen is None or seen[0] is not transaction:
        seen = (transaction, set())
        conn.info[_NOTIFIED] = seen
    if location_id in seen[1]:
        return
    if cursor is not None:
        cursor.execute(_NOTIFY_DRIVER, (CHANNEL, location_id))
    else:
        conn.execute(_NOTIFY, {"channel": CHANNEL, "location": location_id})
    seen[1].add(location_id)


def libpq_url(engine: sa.Engine) -> str:
    """The engine's URL as psycopg's `connect()` takes it (no SQLAlchemy driver suffix)."""
    return engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


async def listen_for_work(
    url: str,
    on_work: Callable[[str | None], None],
    *,
    ready: asyncio.Event | None = None,
    on_lost: Callable[[], None] | None = None,
    skip: Callable[[int], bool] | None = None,
) -> None:
    """LISTEN until cancelled; `on_work(location)` per notification (but those whose sending
    backend's pid `skip` answers True for), `on_work(None)` after each (re)connect,
    `on_lost()` when the connection fails. `ready` is set once the first LISTEN is in place
    (or failed: the caller then polls)."""
    import psycopg

    delay = 0.5
    while True:
        try:
            async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
                await conn.execute(f"LISTEN {CHANNEL}")
                delay = 0.5
                if ready is not None:
                    ready.set()
                on_work(None)  # anything committed while we were not listening
                async for note in conn.notifies():
                    if skip is None or not skip(note.pid):
                        on_work(note.payload or None)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the database went away: poll meanwhile, reconnect later
            _log.warning("LISTEN %s failed (%s); reconnecting in %.1fs", CHANNEL, exc, delay)
        if on_lost is not None:
            on_lost()
        if ready is not None:
            ready.set()  # do not hold the worker up: it polls until the listener is back
        await asyncio.sleep(delay)
        delay = min(_RECONNECT_MAX, delay * 2)
