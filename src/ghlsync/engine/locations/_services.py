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
from ghlsync.engine.locations._lazyvault import LazyVault, VaultLike
from ghlsync.engine.locations._tokens import LocationTokens
from ghlsync.ghl._crypto import TokenCipher
from ghlsync.ghl._oauth import OAuthApp
from ghlsync.ghl._seams import RateLimiter
from ghlsync.ghl._vault import TokenVault
from ghlsync.mapping import AppConfig, Mapper

__all__ = ["LocationServices", "oauth_from_env"]


def oauth_from_env(config: AppConfig, env: Mapping[str, str] | None = None) -> OAuthApp | None:
    """The marketplace app from `GHLSYNC_GHL_CLIENT_ID` / `_SECRET` (as `auth login` reads)."""
    env = os.environ if env is None else env
    client_id, secret = env.get("GHLSYNC_GHL_CLIENT_ID"), env.get("GHLSYNC_GHL_CLIENT_SECRET")
    if not client_id or not secret:
        return None
    return OAuthApp(
        client_id,
        Secret(secret),
        "",
        base_url=config.ghl.base_url,
        api_version=config.ghl.api_version,
    )


@dataclass(frozen=True, slots=True)
class LocationServices:
    """The directory, token source and installer of one process."""

    directory: LocationDirectory
    tokens: LocationTokens
    installer: Installer
    vault: VaultLike | None = None

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
        """Services over `engine`. Without a `vault`, a `LazyVault`: the encryption key is
        read when a stored token is first needed (single-location mode never needs one), and
        tokens stored after start-up (`locations add`, an INSTALL) are used without a restart."""
        oauth = oauth or oauth_from_env(config)
        lazy: VaultLike = vault or LazyVault(engine, cipher=cipher, oauth=oauth, clock=clock)
        directory = LocationDirectory(engine, config, cipher, mapper=mapper, clock=clock)
        tokens = LocationTokens.from_config(config, lazy)
        installer = Installer(engine, directory, lazy, oauth, clock=clock)
        return cls(directory, tokens, installer, lazy)

    def can_sync(self) -> bool:
        """True when some location has a token: a configured one, or one stored in the
        vault (read from the store now, so a process checks what is there when it asks)."""
        ghl = self.directory.base_config.ghl
        if ghl.location_id and ghl.token is not None:
            return True
        vault = self.vault
        if isinstance(vault, LazyVault):
            return vault.has_connections()
        return vault is not None

    def gate(self, limiter: RateLimiter) -> LocationGate:
        """`limiter`, also refusing budget to uninstalled locations (for the worker's claims)."""
        return LocationGate(limiter, self.directory)
