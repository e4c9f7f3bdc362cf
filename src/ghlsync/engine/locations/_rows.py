"""Reading and writing `locations` and `dripjobs_connections` (short transactions).

Writes run in `begin_immediate` (SQLite's single writer is taken up front; PostgreSQL locks the
location row), so two installs of one location racing each other create one connection.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from ghlsync._secret import Secret
from ghlsync.ghl._crypto import TokenCipher
from ghlsync.store import begin_immediate
from ghlsync.store._tables_locations import dripjobs_connections, locations

__all__ = [
    "ACTIVE",
    "UNINSTALLED",
    "ConnectionRow",
    "LocationRow",
    "Registered",
    "get_connection",
    "get_location",
    "list_connections",
    "list_locations",
    "new_connection_id",
    "new_secret",
    "register_location",
    "rotate_secret",
    "set_location_options",
    "uninstall_location",
]

ACTIVE = "active"
UNINSTALLED = "uninstalled"
_L = locations.c
_C = dripjobs_connections.c


@dataclass(frozen=True, slots=True)
class LocationRow:
    """One stored location (its override as YAML text)."""

    location_id: str
    company_id: str | None
    name: str | None
    status: str
    calendar_id: str | None
    mapping_override: str | None
    installed_at: float
    uninstalled_at: float | None
    updated_at: float
    api_version: str | None = None  # "v2" | "v3"; None: the config's ghl.api_version

    @property
    def active(self) -> bool:
        """True unless the location was uninstalled."""
        return self.status == ACTIVE


@dataclass(frozen=True, slots=True)
class ConnectionRow:
    """One DripJobs connection; `secret` is decrypted and masked in every repr."""

    connection_id: str
    location_id: str
    secret: Secret
    created_at: float
    revoked_at: float | None

    @property
    def revoked(self) -> bool:
        """True once the connection was revoked (uninstall, `locations remove`)."""
        return self.revoked_at is not None


@dataclass(frozen=True, slots=True)
class Registered:
    """What `register_location` did: the location, its connection, and a secret when new."""

    location: LocationRow
    connection_id: str
    new_secret: Secret | None  # only when a connection was created now: shown once


def new_connection_id() -> str:
    """An unguessable URL slug (144 random bits)."""
    return "dj_" + secrets.token_urlsafe(18)


def new_secret() -> Secret:
    """A fresh webhook secret (256 random bits)."""
    return Secret(secrets.token_urlsafe(32))


# -- reading -------------------------------------------------------------------------------


def get_location(bind: sa.Engine | sa.Connection, location_id: str) -> LocationRow | None:
    """The stored location, or None."""
    with _reading(bind) as conn:
        row = conn.execute(sa.select(locations).where(_L.location_id == location_id)).first()
    return _location(row) if row is not None else None


def list_locations(bind: sa.Engine | sa.Connection) -> list[LocationRow]:
    """Every stored location, by id."""
    with _reading(bind) as conn:
        rows = conn.execute(sa.select(locations).order_by(_L.location_id)).all()
    return [_location(row) for row in rows]


def get_connection(
    bind: sa.Engine | sa.Connection,
    cipher: TokenCipher | Callable[[], TokenCipher],
    connection_id: str,
) -> ConnectionRow | None:
    """The connection with this id (revoked or not), or None.

    `cipher` may be a function giving it, called only when there is a secret to open.
    """
    query = sa.select(dripjobs_connections).where(_C.connection_id == connection_id)
    with _reading(bind) as conn:
        row = conn.execute(query).first()
    if row is None:
        return None
    return _connection(row, cipher if isinstance(cipher, TokenCipher) else cipher())


def list_connections(
    bind: sa.Engine | sa.Connection, cipher: TokenCipher | None, location_id: str
) -> list[ConnectionRow]:
    """The location's connections, oldest first.

    With `cipher` None the secrets stay sealed (each `secret` is empty): for listings that
    must work without the encryption key.
    """
    query = (
        sa.select(dripjobs_connections)
        .where(_C.location_id == location_id)
        .order_by(_C.created_at, _C.connection_id)
    )
    with _reading(bind) as conn:
        rows = conn.execute(query).all()
    return [_connection(row, cipher) for row in rows]


# -- writing -------------------------------------------------------------------------------


def register_location(
    engine: sa.Engine,
    cipher: TokenCipher,
    location_id: str,
    *,
    now: float,
    company_id: str | None = None,
    name: str | None = None,
) -> Registered:
    """Install (or reactivate) a location and make sure it has one live connection."""
    with begin_immediate(engine) as conn:
        _upsert_active(conn, location_id, company_id, name, now)
        location = _locked_location(conn, location_id)
        live = _live_connection_ids(conn, location_id)
        if live:
            return Registered(location, live[0], None)
        connection_id, secret = new_connection_id(), new_secret()
        conn.execute(
            dripjobs_connections.insert().values(
                connection_id=connection_id,
                location_id=location_id,
                secret=cipher.encrypt(secret),
                key_id=cipher.key_id,
                created_at=now,
            )
        )
    return Registered(location, connection_id, secret)


def set_location_options(
    engine: sa.Engine, location_id: str, *, now: float, **values: str | None
) -> bool:
    """Change `calendar_id`, `mapping_override`, `name` or `api_version` ("v2", "v3", None);
    False when there is no such row."""
    allowed = {"calendar_id", "mapping_override", "name", "api_version"}
    if values.get("api_version") not in (None, "v2", "v3"):
        raise ValueError(f"api_version must be 'v2' or 'v3', not {values['api_version']!r}")
    if set(values) - allowed:
        raise ValueError(f"only {sorted(allowed)} can be set")
    with begin_immediate(engine) as conn:
        changed = conn.execute(
            locations.update().where(_L.location_id == location_id).values(**values, updated_at=now)
        ).rowcount
    return bool(changed)


def uninstall_location(engine: sa.Engine, location_id: str, *, now: float) -> bool:
    """Mark the location uninstalled and revoke its connections; its data stays.

    False when the location is unknown or already uninstalled.
    """
    with begin_immediate(engine) as conn:
        changed = conn.execute(
            locations.update()
            .where(_L.location_id == location_id, _L.status == ACTIVE)
            .values(status=UNINSTALLED, uninstalled_at=now, updated_at=now)
        ).rowcount
        conn.execute(
            dripjobs_connections.update()
            .where(_C.location_id == location_id, _C.revoked_at.is_(None))
            .values(revoked_at=now)
        )
    return bool(changed)


def rotate_secret(engine: sa.Engine, cipher: TokenCipher, connection_id: str) -> Secret | None:
    """Give a live connection a new secret (same URL); None when it is unknown or revoked."""
    secret = new_secret()
    with begin_immediate(engine) as conn:
        changed = conn.execute(
            dripjobs_connections.update()
            .where(_C.connection_id == connection_id, _C.revoked_at.is_(None))
            .values(secret=cipher.encrypt(secret), key_id=cipher.key_id)
        ).rowcount
    return secret if changed else None


def _upsert_active(
    conn: sa.Connection, location_id: str, company_id: str | None, name: str | None, now: float
) -> None:
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    stmt = insert(locations).values(
        location_id=location_id,
        company_id=company_id,
        name=name,
        status=ACTIVE,
        installed_at=now,
        updated_at=now,
    )
    # A reinstall reactivates the row and keeps its calendar and override.
    updates: dict[str, Any] = {"status": ACTIVE, "uninstalled_at": None, "updated_at": now}
    updates["installed_at"] = sa.case(
        (_L.status == ACTIVE, _L.installed_at), else_=stmt.excluded.installed_at
    )
    if company_id is not None:
        updates["company_id"] = company_id
    if name is not None:
        updates["name"] = name
    conn.execute(stmt.on_conflict_do_update(index_elements=[_L.location_id], set_=updates))


def _locked_location(conn: sa.Connection, location_id: str) -> LocationRow:
    query = sa.select(locations).where(_L.location_id == location_id).with_for_update()
    return _location(conn.execute(query).one())


def _live_connection_ids(conn: sa.Connection, location_id: str) -> list[str]:
    query = (
        sa.select(_C.connection_id)
        .where(_C.location_id == location_id, _C.revoked_at.is_(None))
        .order_by(_C.created_at, _C.connection_id)
    )
    return list(conn.execute(query).scalars())


class _reading:
    """A connection for reads: the caller's, or a short-lived one from the engine."""

    def __init__(self, bind: sa.Engine | sa.Connection) -> None:
        self._bind = bind
        self._own: sa.Connection | None = None

    def __enter__(self) -> sa.Connection:
        if isinstance(self._bind, sa.Connection):
            return self._bind
        self._own = self._bind.connect()
        return self._own

    def __exit__(self, *exc: object) -> None:
        if self._own is not None:
            self._own.close()


def _location(row: Any) -> LocationRow:
    return LocationRow(
        location_id=row.location_id,
        company_id=row.company_id,
        name=row.name,
        status=row.status,
        calendar_id=row.calendar_id,
        mapping_override=row.mapping_override,
        installed_at=row.installed_at,
        uninstalled_at=row.uninstalled_at,
        updated_at=row.updated_at,
        api_version=row.api_version,
    )


def _connection(row: Any, cipher: TokenCipher | None) -> ConnectionRow:
    return ConnectionRow(
        connection_id=row.connection_id,
        location_id=row.location_id,
        secret=cipher.decrypt(row.secret) if cipher is not None else Secret(""),
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )
