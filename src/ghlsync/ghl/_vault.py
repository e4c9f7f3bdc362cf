"""OAuth tokens stored encrypted in the store, refreshed so that a connection never breaks.

GHL refresh tokens are single-use: if two refreshes race, the loser spends a dead token, gets
`invalid_grant`, and the location is disconnected until a human logs in again. So a refresh is
single-flight at two levels:

- within a process, one task per key does the refresh and every caller awaits it;
- across processes, that task holds the row's write lock (`SELECT ... FOR UPDATE` on
  PostgreSQL, `BEGIN IMMEDIATE` on SQLite) while it re-reads the row. If the stored access
  token is no longer the one the caller judged stale, another process already refreshed: its
  token is used. Otherwise GHL is called, and the rotated tokens are COMMITTED before the new
  access token is handed out, so no process ever works with a token the store does not hold.

`invalid_grant` marks the row `reconnect_needed` (the user must run `ghlsync auth login`);
"Location is not active" keeps the token, since GHL accepts it again on reactivation.

Every GHL request asks for its token. The row read for it is kept `READ_CACHE_S` (5 s) per
key, so a busy location reads and decrypts its row a few times a minute instead of once per
request (a thread hand-off, a select and a decryption each). Whatever this vault writes
(save, remove, refresh) drops its key's kept read. What another process writes is seen within
those 5 s, and sooner where it matters: a token that process rotated or revoked meanwhile
gets a 401, and `after_unauthorized` always reads the row itself, so it finds the new token
(or the reconnect mark) at once; a refresh comes due by the stored expiry as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from ghlsync._clock import SYSTEM_CLOCK, Clock
from ghlsync._secret import Secret
from ghlsync.ghl._crypto import TokenCipher
from ghlsync.ghl._errors import ReconnectNeededError
from ghlsync.ghl._oauth import InvalidGrantError, LocationInactiveError, OAuthApp, TokenSet
from ghlsync.store._engine import begin_immediate, begin_immediate_on, is_sqlite
from ghlsync.store._tables import ghl_connections

__all__ = [
    "ACTIVE",
    "LOCATION_INACTIVE",
    "RECONNECT_MESSAGE",
    "RECONNECT_NEEDED",
    "ConnectionStatus",
    "TokenVault",
    "stored_connections",
    "stored_status",
]

log = logging.getLogger("ghlsync.auth")

ACTIVE = "active"
RECONNECT_NEEDED = "reconnect_needed"
LOCATION_INACTIVE = "location_inactive"
RECONNECT_MESSAGE = "reconnect needed: run `ghlsync auth login`"
_COLS = ghl_connections.c
P = ParamSpec("P")
T = TypeVar("T")
READ_CACHE_S = 5.0  # how long `token()` uses a row it read (see the module docstring)
_KEPT_KEYS = 10_000  # rows kept at most; more: start again


@dataclass(frozen=True, slots=True)
class ConnectionStatus:
    """One stored connection as `ghlsync auth status` shows it (never the tokens)."""

    key: str
    user_type: str
    kind: str  # "oauth" | "private"
    company_id: str | None
    status: str
    status_message: str | None
    expires_at: float | None
    scopes: str
    key_id: str | None
    updated_at: float

    def expires_in(self, now: float) -> float | None:
        """Seconds until the access token expires (negative once expired); None: never."""
        return None if self.expires_at is None else self.expires_at - now


@dataclass(frozen=True, slots=True)
class _Stored:
    info: ConnectionStatus
    access: Secret
    refresh: Secret | None


class TokenVault:
    """A `TokenSource` over encrypted rows of `ghl_connections`, refreshed single-flight."""

    def __init__(
        self,
        engine: sa.Engine,
        cipher: TokenCipher,
        oauth: OAuthApp | None = None,
        clock: Clock = SYSTEM_CLOCK,
        refresh_margin: float = 300.0,
        read_cache_s: float = READ_CACHE_S,
    ) -> None:
        self._engine = engine
        self._cipher = cipher
        self._oauth = oauth
        self._clock = clock
        self._margin = refresh_margin
        self._inflight: dict[str, asyncio.Task[Secret]] = {}
        self._gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )
        self._lock_threads = ThreadPoolExecutor(4, thread_name_prefix="ghlsync-token-lock")
        self._read_cache_s = read_cache_s
        self._kept: dict[str, tuple[float, _Stored | None]] = {}  # key -> (read at, row)
        self._writes = 0  # this vault's writes so far: a read begun before one is not kept

    def __repr__(self) -> str:
        return f"TokenVault(url={self._engine.url!r}, cipher={self._cipher!r})"

    # -- writing ---------------------------------------------------------------------------

    def save(self, key: str, tokens: TokenSet, *, kind: str = "oauth") -> None:
        """Store (or replace) the tokens for `key`, encrypted; the connection becomes active."""
        values = {
            "key": key,
            "user_type": tokens.user_type,
            "kind": kind,
            "company_id": tokens.company_id,
            **self._token_values(tokens),
        }
        with begin_immediate(self._engine) as conn:
            _upsert(conn, values)
        self._forget_read(key)
        log.info("saved %s %s connection %s", kind, tokens.user_type, key)

    def save_private(self, key: str, token: Secret, *, user_type: str = "Location") -> None:
        """Store a Private Integration token (static: never refreshed)."""
        tokens = TokenSet(token, refresh_token=None, expires_at=None, user_type=user_type)
        self.save(key, tokens, kind="private")

    async def add_location(self, company_key: str, location_id: str) -> TokenSet:
        """Mint a location token from the agency connection `company_key`, and store it.

        Without a refresh token of its own, it is re-minted from the agency token when due.
        """
        if self._oauth is None:
            raise ValueError("minting location tokens needs an OAuthApp")
        company_token = await self.token(company_key)
        tokens = await self._oauth.location_token(company_token, company_key, location_id)
        await asyncio.to_thread(self.save, location_id, tokens)
        return tokens

    def remove(self, key: str) -> bool:
        """Forget the connection for `key`; True when there was one."""
        with begin_immediate(self._engine) as conn:
            deleted = conn.execute(ghl_connections.delete().where(_COLS.key == key)).rowcount
        self._forget_read(key)
        return bool(deleted)

    # -- reading ---------------------------------------------------------------------------

    def status(self, key: str) -> ConnectionStatus | None:
        """The connection for `key` without its tokens, or None."""
        return stored_status(self._engine, key)

    def connections(self) -> list[ConnectionStatus]:
        """Every stored connection, by key."""
        return stored_connections(self._engine)

    # -- TokenSource -----------------------------------------------------------------------

    async def token(self, key: str) -> Secret:
        """A token believed valid now; refreshed first when within the margin of expiry."""
        stored = _require_usable(await self._read_kept(key), key)
        expires_at = stored.info.expires_at
        if expires_at is None or expires_at - self._clock.now() > self._margin:
            return stored.access
        return await self._refresh(key, stored.access)

    async def after_unauthorized(self, key: str, rejected: Secret) -> Secret | None:
        """GHL refused `rejected`: refresh once, unless someone already replaced it."""
        stored = await asyncio.to_thread(self._read, key)
        self._forget_read(key)  # read again next time: a refresh may follow
        if stored is None or stored.info.kind == "private" or self._oauth is None:
            return None
        _require_usable(stored, key)
        if stored.access != rejected:
            return stored.access
        fresh = await self._refresh(key, rejected)
        return None if fresh == rejected else fresh

    # -- refreshing ------------------------------------------------------------------------

    async def _refresh(self, key: str, stale: Secret) -> Secret:
        loop = asyncio.get_running_loop()
        task = self._inflight.get(key)
        if task is None or task.get_loop() is not loop:
            task = loop.create_task(self._refresh_now(key, stale))
            self._inflight[key] = task
            task.add_done_callback(functools.partial(self._forget, key))
        # shield: a caller that gives up must not abort a refresh GHL may already have rotated.
        return await asyncio.shield(task)

    def _forget(self, key: str, task: asyncio.Task[Secret]) -> None:
        self._forget_read(key)  # the refresh wrote the row (or marked it): read it again
        if self._inflight.get(key) is task:
            del self._inflight[key]
        if not task.cancelled():
            task.exception()  # retrieved here so an abandoned failure is not logged as lost

    async def _refresh_now(self, key: str, stale: Secret) -> Secret:
        company_token = await self._company_token_for(key)
        async with self._writer_gate():
            lock = await self._locked(_RowLock, self._engine, self._cipher, key)
            try:
                return await self._refresh_locked(lock, key, stale, company_token)
            finally:
                await self._locked(lock.release)

    def _writer_gate(self) -> contextlib.AbstractAsyncContextManager[object]:
        # SQLite has one write lock for the whole file, and a refresh holds it across the call
        # to GHL: a second refresh in this process could only wait for it, so it queues here
        # instead of parking a thread on the lock.
        if not is_sqlite(self._engine):
            return contextlib.nullcontext()
        loop = asyncio.get_running_loop()
        gate = self._gates.get(loop)
        if gate is None:
            gate = self._gates[loop] = asyncio.Lock()
        return gate

    async def _locked(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        # The row lock's own threads: a commit that releases the lock must never queue behind
        # threads of the shared pool that are themselves waiting for that lock.
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._lock_threads, functools.partial(fn, *args, **kwargs)
        )

    async def _refresh_locked(
        self, lock: _RowLock, key: str, stale: Secret, company_token: Secret | None
    ) -> Secret:
        stored = _require_usable(lock.stored, key)
        if stored.access != stale:
            return stored.access  # another task or process refreshed while we waited
        if not self._can_refresh(stored, company_token):
            return self._unrefreshable(stored, key)
        try:
            tokens = await self._call_ghl(key, stored, company_token)
        except InvalidGrantError:
            await self._locked(lock.commit, self._marked(RECONNECT_NEEDED, RECONNECT_MESSAGE))
            log.warning("GHL refused the refresh token for %s: %s", key, RECONNECT_MESSAGE)
            raise ReconnectNeededError(f"{key}: {RECONNECT_MESSAGE}") from None
        except LocationInactiveError:
            message = "GHL says the location is not active; the token is kept for reactivation"
            await self._locked(lock.commit, self._marked(LOCATION_INACTIVE, message))
            log.warning("refresh for %s: %s", key, message)
            raise
        await self._locked(lock.commit, self._token_values(tokens))
        log.info("refreshed GHL token for %s", key)
        return tokens.access_token

    async def _call_ghl(self, key: str, stored: _Stored, company_token: Secret | None) -> TokenSet:
        assert self._oauth is not None  # checked by _can_refresh
        if stored.refresh is not None:
            return await self._oauth.refresh(stored.refresh, stored.info.user_type)
        assert company_token is not None and stored.info.company_id is not None
        return await self._oauth.location_token(company_token, stored.info.company_id, key)

    async def _company_token_for(self, key: str) -> Secret | None:
        # A location token minted from an agency token has no refresh token of its own: it is
        # re-minted. The agency token is fetched before locking, as it may need its own refresh.
        stored = await asyncio.to_thread(self._read, key)
        if stored is None or stored.refresh is not None or self._oauth is None:
            return None
        company = stored.info.company_id
        if stored.info.user_type != "Location" or not company or company == key:
            return None
        if await asyncio.to_thread(self.status, company) is None:
            return None
        return await self.token(company)

    def _can_refresh(self, stored: _Stored, company_token: Secret | None) -> bool:
        if self._oauth is None or stored.info.kind == "private":
            return False
        return stored.refresh is not None or company_token is not None

    def _unrefreshable(self, stored: _Stored, key: str) -> Secret:
        expires_at = stored.info.expires_at
        if expires_at is not None and expires_at <= self._clock.now():
            raise ReconnectNeededError(f"{key}: the token expired and cannot be refreshed here")
        return stored.access

    # -- rows ------------------------------------------------------------------------------

    async def _read_kept(self, key: str) -> _Stored | None:
        """The row of `key` as read at most `read_cache_s` ago (read now if older)."""
        kept = self._kept.get(key)
        now = time.monotonic()
        if kept is not None and now - kept[0] < self._read_cache_s:
            return kept[1]
        writes = self._writes
        stored = await asyncio.to_thread(self._read, key)
        if writes == self._writes:  # else it may predate a write of ours: use it, keep it not
            if len(self._kept) >= _KEPT_KEYS:
                self._kept.clear()
            self._kept[key] = (now, stored)
        return stored

    def _forget_read(self, key: str) -> None:
        self._writes += 1
        self._kept.pop(key, None)

    def _read(self, key: str) -> _Stored | None:
        with self._engine.connect() as conn:
            row = conn.execute(_ROW, {"key": key}).first()
        return _decode(row, self._cipher) if row is not None else None

    def _token_values(self, tokens: TokenSet) -> dict[str, Any]:
        refresh = tokens.refresh_token
        values: dict[str, Any] = {
            "access_token": self._cipher.encrypt(tokens.access_token),
            "refresh_token": self._cipher.encrypt(refresh) if refresh is not None else None,
            "expires_at": tokens.expires_at,
            "status": ACTIVE,
            "status_message": None,
            "key_id": self._cipher.key_id,
            "updated_at": self._clock.now(),
        }
        if tokens.scope:  # a refresh answer may leave the scopes out: keep what we had
            values["scopes"] = tokens.scope
        return values

    def _marked(self, status: str, message: str) -> dict[str, Any]:
        return {"status": status, "status_message": message, "updated_at": self._clock.now()}


class _RowLock:
    """One connection holding the write lock on a connection row until commit or release."""

    def __init__(self, engine: sa.Engine, cipher: TokenCipher, key: str) -> None:
        self._key = key
        self._conn = engine.connect()
        try:
            self._tx = begin_immediate_on(self._conn)
            row = self._conn.execute(_select_row(key).with_for_update()).first()
            self.stored = _decode(row, cipher) if row is not None else None
        except BaseException:
            self._conn.close()
            raise

    def commit(self, values: dict[str, Any]) -> None:
        """Write `values` to the row and commit: the lock is released with the data durable."""
        self._conn.execute(ghl_connections.update().where(_COLS.key == self._key).values(values))
        self._tx.commit()

    def release(self) -> None:
        """Roll back whatever was not committed and return the connection."""
        try:
            if self._tx.is_active:
                self._tx.rollback()
        finally:
            self._conn.close()


def stored_status(engine: sa.Engine, key: str) -> ConnectionStatus | None:
    """The connection for `key` without its tokens, or None; needs no key."""
    with engine.connect() as conn:
        row = conn.execute(sa.select(*_info_columns()).where(_COLS.key == key)).first()
    return _info(row) if row is not None else None


def stored_connections(engine: sa.Engine) -> list[ConnectionStatus]:
    """Every stored connection, by key; needs no key, since no token is opened."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(*_info_columns()).order_by(_COLS.key)).all()
    return [_info(row) for row in rows]


def _select_row(key: str) -> sa.Select[Any]:
    return sa.select(ghl_connections).where(_COLS.key == key)


# Every GHL request reads its token row: built once, as building and cache-keying a select
# per read cost more CPU than SQLite takes to run it. The same SQL as `_select_row`.
_ROW = sa.select(ghl_connections).where(_COLS.key == sa.bindparam("key"))


def _info_columns() -> list[sa.ColumnElement[Any]]:
    names = ("key", "user_type", "kind", "company_id", "status", "status_message")
    rest = ("expires_at", "scopes", "key_id", "updated_at")
    return [_COLS[name] for name in (*names, *rest)]


def _info(row: Any) -> ConnectionStatus:
    return ConnectionStatus(
        key=row.key,
        user_type=row.user_type,
        kind=row.kind,
        company_id=row.company_id,
        status=row.status,
        status_message=row.status_message,
        expires_at=row.expires_at,
        scopes=row.scopes or "",
        key_id=row.key_id,
        updated_at=row.updated_at,
    )


def _decode(row: Any, cipher: TokenCipher) -> _Stored:
    refresh = row.refresh_token
    return _Stored(
        info=_info(row),
        access=cipher.decrypt(row.access_token),
        refresh=cipher.decrypt(refresh) if refresh is not None else None,
    )


def _require_usable(stored: _Stored | None, key: str) -> _Stored:
    if stored is None:
        raise ReconnectNeededError(f"{key}: no GHL connection stored; run `ghlsync auth login`")
    if stored.info.status == RECONNECT_NEEDED:
        raise ReconnectNeededError(f"{key}: {stored.info.status_message or RECONNECT_MESSAGE}")
    return stored


def _upsert(conn: sa.Connection, values: dict[str, Any]) -> None:
    dialect_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    stmt = dialect_insert(ghl_connections).values(values)
    updates = {name: stmt.excluded[name] for name in values if name != "key"}
    conn.execute(stmt.on_conflict_do_update(index_elements=[_COLS.key], set_=updates))
