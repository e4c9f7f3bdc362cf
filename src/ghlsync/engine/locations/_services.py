"""Everything a process needs to serve many locations, built once from the config.

`serve` shares one `LocationServices` between the receiver (connections, INSTALL/UNINSTALL)
and the worker (contexts, tokens, the uninstalled-location gate), so a change one of them
makes is seen by the other at once.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

import sqlalchemy as sa

from ghlsync._clock import SYSTEM_CLOCK, Clock
from ghlsync._secret import Secret
from ghlsync.engine.locations._directory import LocationDirectory, LocationGate
from ghlsync.engine.locations._install import Installer
from ghlsync.engine.locations._tokens import LocationTokens
from ghlsync.ghl._crypto import TokenCipher
from ghlsync.ghl._oauth import OAuthApp
from ghlsync.ghl._seams import RateLimiter
from ghlsync.ghl._vault import TokenVault
from ghlsync.mapping import AppConfig, Mapper
from ghlsync.store._tables import ghl_connections

__all__ = ["LocationServices", "oauth_from_env"]


def oauth_from_env(config: AppConfig, env: Mapping[str, str] | None = None) -> OAuthApp | None:
    """The marketplace app from `GHLSYNC_GHL_CLIENT_ID` / `_SECRET` (as `auth login` reads)."""
    env = os.environ if env is None else env
    client_id, secret = env.get("GHLSYNC_GHL_CLIENT_ID"), env.get("GHLSYNC_GHL_CLIENT_SECRET")
    if not client_id or not secret:
        return None
    return OAuthApp(client_id, Secret(secret), "", base_url=config.ghl.base_url)


@dataclass(frozen=True, slots=True)
class LocationServices:
    """The directory, token source and installer of one process."""

    directory: LocationDirectory
    tokens: LocationTokens
    installer: Installer
    vault: TokenVault | None = None

    @classmethod
    def build(
        cls,
        engine: sa.Engine,
        config: AppConfig,
        *,
        mapper: Mapper | None = None,
        vault: TokenVault | None = None,
        cipher: TokenCipher | None = None,
        oauth: OAuthApp | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> LocationServices:
        """Services over `engine`; the vault is opened only when it holds a connection (so
        single-location mode needs no encryption key)."""
        oauth = oauth or oauth_from_env(config)
        if vault is None and _has_connections(engine):
            vault = TokenVault(engine, cipher or TokenCipher.from_env(), oauth, clock=clock)
        directory = LocationDirectory(engine, config, cipher, mapper=mapper, clock=clock)
        tokens = LocationTokens.from_config(config, vault)
        installer = Installer(engine, directory, vault, oauth, clock=clock)
        return cls(directory, tokens, installer, vault)

    def can_sync(self) -> bool:
        """True when some location has a token: a configured one, or the vault."""
        ghl = self.directory.base_config.ghl
        return bool(ghl.location_id and ghl.token is not None) or self.vault is not None

    def gate(self, limiter: RateLimiter) -> LocationGate:
        """`limiter`, also refusing budget to uninstalled locations (for the worker's claims)."""
        return LocationGate(limiter, self.directory)


def _has_connections(engine: sa.Engine) -> bool:
    with engine.connect() as conn:
        return conn.execute(sa.select(ghl_connections.c.key).limit(1)).first() is not None
