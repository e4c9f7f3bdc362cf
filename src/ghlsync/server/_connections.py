"""Who a delivery belongs to: the connection (secret + GHL location) its URL names.

Single-location mode has one connection, "default", built from `ghl.location_id` and
`dripjobs.secret`; `POST /hooks/dripjobs/{event}` uses it. Per-location connections only need
more entries here, reached through `POST /hooks/dripjobs/{connection}/{event}`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ghlsync.dripjobs import InboundVerifier
from ghlsync.mapping import AppConfig

DEFAULT_CONNECTION = "default"


@dataclass(frozen=True, slots=True)
class Connection:
    """One inbound connection: its id, the GHL location it feeds, and its verifier."""

    connection_id: str
    location_id: str
    verifier: InboundVerifier


@dataclass(frozen=True, slots=True)
class Unconfigured:
    """A connection that cannot receive yet, and why (answered 503 with the reason)."""

    reason: str


def connections_from_config(config: AppConfig) -> Mapping[str, Connection | Unconfigured]:
    """The connections `config` defines (single-location mode: just "default")."""
    return {DEFAULT_CONNECTION: _default_connection(config)}


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
