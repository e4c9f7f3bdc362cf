"""GHL tokens for many locations: static ones from the config, the rest from the vault.

Single-location mode configures a Private Integration token for `ghl.location_id`; locations
installed through OAuth (an agency install mints their tokens) live encrypted in the vault.
"""

from __future__ import annotations

from collections.abc import Mapping

from ghlsync._secret import Secret
from ghlsync.ghl._errors import ReconnectNeededError
from ghlsync.ghl._tokens import StaticTokens
from ghlsync.ghl._vault import TokenVault
from ghlsync.mapping import AppConfig

__all__ = ["LocationTokens"]


class LocationTokens:
    """A `TokenSource`: a static token when one is configured for the key, else the vault."""

    def __init__(
        self, static: Mapping[str, str | Secret] | None = None, vault: TokenVault | None = None
    ) -> None:
        self._static = StaticTokens(static or {})
        self._keys = frozenset(static or {})
        self._vault = vault

    @classmethod
    def from_config(cls, config: AppConfig, vault: TokenVault | None = None) -> LocationTokens:
        """`ghl.token` for `ghl.location_id` (when both are set), the vault for the rest."""
        location, token = config.ghl.location_id, config.ghl.token
        static = {location: token} if location and token is not None else {}
        return cls(static, vault)

    async def token(self, key: str) -> Secret:
        """The configured token for `key`, else the vault's (refreshed or re-minted)."""
        if key in self._keys or self._vault is None:
            return await self._static.token(key)
        try:
            return await self._vault.token(key)
        except ReconnectNeededError as exc:
            raise ReconnectNeededError(
                f"{exc.message} (or install the app on location {key} again)"
            ) from None

    async def after_unauthorized(self, key: str, rejected: Secret) -> Secret | None:
        """A static token's 401 stands; the vault refreshes once."""
        if key in self._keys or self._vault is None:
            return None
        return await self._vault.after_unauthorized(key, rejected)

    def __repr__(self) -> str:
        return f"LocationTokens(static={sorted(self._keys)!r}, vault={self._vault!r})"
