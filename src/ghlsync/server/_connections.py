"""Who a delivery belongs to: the connection (secret + GHL location) its URL names.

Single-location mode has one connection, "default", built from `ghl.location_id` and
`dripjobs.secret`; `POST /hooks/dripjobs/{event}` uses it. Agency installs add one connection
per location in the store (`dripjobs_connections`, see `docs/locations.md`), reached through
`POST /hooks/dripjobs/{connection}/{event}`: `ConnectionTable` looks them up through the
`LocationDirectory` (cached), each with its own secret and its location's mapper. A revoked
connection, or one whose location was uninstalled, is answered 401 `connection_revoked`.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from ghlsync._secret import Secret
from ghlsync.dripjobs import InboundVerifier, VerificationError
from ghlsync.dripjobs._verify import Verified
from ghlsync.engine.locations._directory import LocationDirectory
from ghlsync.engine.locations._rows import ConnectionRow
from ghlsync.ghl._crypto import SecretKeyError
from ghlsync.mapping import AppConfig, ConfigError, Mapper

DEFAULT_CONNECTION = "default"


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


@dataclass(frozen=True, slots=True)
class Refusing:
    """The verifier of a revoked connection: every delivery is answered 401 with `message`."""

    message: str

    def verify(self, headers: Mapping[str, str], body: bytes, *, now: float) -> Verified:
        """Always refuse."""
        raise VerificationError("connection_revoked", self.message)


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
            return Unconfigured(f"connection {name} cannot be checked: {exc}")
        if row is None:
            return None
        try:
            context = self._directory.get(row.location_id)
        except ConfigError as exc:  # e.g. the base config changed under an old override
            return Unconfigured(f"location {row.location_id} cannot receive: {exc}")
        if row.revoked or not context.active:
            return Connection(name, row.location_id, Refusing(_revoked_message(row)))
        return Connection(name, row.location_id, self._verifier(row), context.mapper)

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
