"""Who a delivery belongs to: the connection (secret + GHL location) its URL names.

Single-location mode has one connection, "default", built from `ghl.location_id` and
`dripjobs.secret`; `POST /hooks/dripjobs/{event}` uses it. Agency installs add one connection
per location in the store (`dripjobs_connections`, see `docs/locations.md`), reached through
`POST /hooks/dripjobs/{connection}/{event}`: `ConnectionTable` looks them up through the
`LocationDirectory` (cached), each with its own secret and its location's mapper. A revoked
connection, or one whose location was uninstalled, is answered 401 `connection_revoked` once
the request proves it knows the connection's secret.

Before a request is authenticated it learns nothing about the connection it names: an unknown
id is checked against a random secret (`unknown_connection`), so it gets exactly the answer a
wrong secret gets, and a connection that cannot be checked says so without naming locations or
keys (the log has the detail).
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import sqlalchemy as sa

from ghlsync._secret import Secret
from ghlsync.dripjobs import InboundVerifier, VerificationError
from ghlsync.dripjobs._verify import Verified
from ghlsync.engine.locations._directory import LocationDirectory
from ghlsync.engine.locations._rows import ConnectionRow
from ghlsync.ghl._crypto import SecretKeyError
from ghlsync.mapping import AppConfig, ConfigError, Mapper
from ghlsync.store._tables_locations import dripjobs_connections

DEFAULT_CONNECTION = "default"
_log = logging.getLogger("ghlsync.server")
_NO_MATCH = "the bearer secret does not match"  # as InboundVerifier words it
_CANNOT_CHECK = (
    "this connection cannot receive deliveries now because of a server configuration problem "
    "(the server's log says which); retry later"
)


class Verifier(Protocol):
    """Checks a delivery's credentials on the raw bytes (`InboundVerifier` or a refusal)."""

    def verify(self, headers: Mapping[str, str], body: bytes, *, now: float) -> Verified: ...


@dataclass(frozen=True, slots=True)
class Connection:
    """One inbound connection: its id, the GHL location it feeds, its verifier and mapper.

    `mapper` is the location's (with its mapping override); None means the receiver's own.
    """

    connection_id: str
    location_id: str
    verifier: Verifier
    mapper: Mapper | None = None


class Connections(Protocol):
    """What the receiver looks connections up in (a mapping, or a `ConnectionTable`)."""

    def get(self, name: str, /) -> Connection | Unconfigured | None: ...


@dataclass(frozen=True, slots=True)
class Unconfigured:
    """A connection that cannot receive yet, and why (answered 503 with the reason)."""

    reason: str


class Refused(VerificationError):
    """The credentials checked out, and the connection refuses anyway (`status`, `code`)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(code, message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Refusing:
    """The verifier of a connection that takes no deliveries: a request that proves the
    connection's secret is refused with `status`, `code` and `message` (which may name the
    location); any other gets the usual 401 of its credentials.
    """

    message: str
    secret_check: Verifier | None = None
    status: int = 401
    code: str = "connection_revoked"

    def verify(self, headers: Mapping[str, str], body: bytes, *, now: float) -> Verified:
        """Check the credentials first (so `message` is shown only to the owner), then refuse."""
        if self.secret_check is not None:
            self.secret_check.verify(headers, body, now=now)
        raise Refused(self.status, self.code, self.message)


def unknown_connection(name: str, tolerance_seconds: float) -> Connection:
    """A stand-in for a connection that does not exist: a random secret nobody knows.

    Its refusals are those of a real connection given a wrong secret, so a caller cannot tell
    which connection ids exist.
    """
    verifier = InboundVerifier(secrets.token_urlsafe(32), tolerance_seconds=tolerance_seconds)
    return Connection(name, "", Refusing(_NO_MATCH, verifier, 401, "bad_credentials"))


def connections_from_config(config: AppConfig) -> Mapping[str, Connection | Unconfigured]:
    """The connections `config` defines (single-location mode: just "default")."""
    return {DEFAULT_CONNECTION: _default_connection(config)}


class ConnectionTable:
    """The config's "default" connection, then the store's; `get(name)` like a mapping."""

    def __init__(self, config: AppConfig, directory: LocationDirectory | None = None) -> None:
        self._default = _default_connection(config)
        self._directory = directory
        self._tolerance = config.dripjobs.timestamp_tolerance
        self._verifiers: dict[tuple[str, Secret], InboundVerifier] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> Connection | Unconfigured | None:
        """The connection named in the URL, or None when there is no such connection."""
        if name == DEFAULT_CONNECTION:
            return self._default
        if self._directory is None:
            return None
        try:
            row = self._directory.connection(name)
        except SecretKeyError as exc:  # GHLSYNC_SECRET_KEY lacks the key that sealed it
            _log.warning("connection %s cannot be checked: %s", name, exc)
            return Unconfigured(_CANNOT_CHECK)
        if row is None:
            return None
        try:
            context = self._directory.get(row.location_id)
        except ConfigError as exc:  # e.g. the base config changed under an old override
            message = f"location {row.location_id} cannot receive: {exc}"
            refusing = Refusing(message, self._verifier(row), 503, "not_configured")
            return Connection(name, row.location_id, refusing)
        if row.revoked or not context.active:
            refusing = Refusing(_revoked_message(row), self._verifier(row))
            return Connection(name, row.location_id, refusing)
        return Connection(name, row.location_id, self._verifier(row), context.mapper)

    def receiving_problem(self) -> str | None:
        """Why no delivery can be accepted at all (for /healthz), or None.

        The default connection is unusable and the store holds no live per-location one.
        """
        if isinstance(self._default, Connection):
            return None
        if self._directory is not None and _any_live_connection(self._directory):
            return None
        return (
            f"{self._default.reason}; and no location has a connection of its own "
            "(docs/locations.md): every DripJobs delivery is refused"
        )

    def _verifier(self, row: ConnectionRow) -> InboundVerifier:
        # Keyed by the secret too, so a rotated secret gets a new verifier.
        key = (row.connection_id, row.secret)
        found = self._verifiers.get(key)
        if found is None:
            found = InboundVerifier(row.secret, tolerance_seconds=self._tolerance)
            with self._lock:
                self._verifiers = {k: v for k, v in self._verifiers.items() if k[0] != key[0]}
                self._verifiers[key] = found
        return found


def _any_live_connection(directory: LocationDirectory) -> bool:
    table = dripjobs_connections
    query = sa.select(table.c.connection_id).where(table.c.revoked_at.is_(None)).limit(1)
    with directory.engine.connect() as conn:
        return conn.execute(query).first() is not None


def _revoked_message(row: ConnectionRow) -> str:
    return (
        f"connection {row.connection_id} no longer accepts deliveries: it was revoked or its "
        f"GHL location {row.location_id} was uninstalled (see `ghlsync locations show "
        f"{row.location_id}` for its current webhook URL)"
    )


def _default_connection(config: AppConfig) -> Connection | Unconfigured:
    secret = config.dripjobs.secret
    if secret is None or not secret.reveal():
        return Unconfigured(
            "no DripJobs webhook secret is configured (dripjobs.secret in ghlsync.yaml, "
            "or GHLSYNC_DRIPJOBS_SECRET)"
        )
    if not config.ghl.location_id:
        return Unconfigured(
            "no GHL location is configured (ghl.location_id in ghlsync.yaml, "
            "or GHLSYNC_GHL_LOCATION_ID)"
        )
    verifier = InboundVerifier(secret, tolerance_seconds=config.dripjobs.timestamp_tolerance)
    return Connection(DEFAULT_CONNECTION, config.ghl.location_id, verifier)
