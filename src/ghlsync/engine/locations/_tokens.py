"""GHL tokens for many locations: static ones from the config, the rest from the vault.

Single-location mode configures a Private Integration token for `ghl.location_id`; locations
installed through OAuth (an agency install mints their tokens) live encrypted in the vault.
The vault may be a `LazyVault`: its key is read when a stored token is first needed.
"""

from __future__ import annotations

from collections.abc import Mapping

from ghlsync._secret import Secret
from ghlsync.engine.locations._lazyvault import VaultLike, open_vault
from ghlsync.ghl._errors import ReconnectNeededError
from ghlsync.ghl._tokens import StaticTokens
from ghlsync.ghl._vault import TokenVault
from ghlsync.mapping import AppConfig

__all__ = ["LocationTokens"]


class LocationTokens:
    """A `TokenSource`: a static token when one is configured for the key, else the vault."""

    def __init__(
        self, static: Mapping[str, str | Secret] | None = None, vault: VaultLike | None = None
    ) -> None:
        self._static = StaticTokens(static or {})
        self._keys = frozenset(static or {})
        self._vault = vault

    @classmethod
    def from_config(cls, config: AppConfig, vault: VaultLike | None = None) -> LocationTokens:
        """`ghl.token` for `ghl.location_id` (when both are set), the vault for the rest."""
        location, token = config.ghl.location_id, config.ghl.token
        static = {location: token} if location and token is not None else {}
        return cls(static, vault)

    async def token(self, key: str) -> Secret:
        """The configured token for `key`, else the vault's (refreshed or re-minted)."""
        if key in self._keys or self._vault is None:
            return await self._static.token(key)
        try:
            return await _opened(self._vault).token(key)
        except ReconnectNeededError as exc:
            raise ReconnectNeededError(
                f"{exc.message} (or install the app on location {key} again)"
            ) from None

    async def after_unauthorized(self, key: str, rejected: Secret) -> Secret | None:
        """A static token's 401 stands; the vault refreshes once."""
        if key in self._keys or self._vault is None:
            return None
        return await _opened(self._vault).after_unauthorized(key, rejected)

    def unauthorized_fix(self, key: str) -> str:
        """What a person must do when GHL refuses the token of `key` (401): where it came
        from decides (the config, a stored Private Integration token, or OAuth)."""
        if key in self._keys:
            return (
                "GHL refuses the Private Integration token configured for this location: fix "
                "ghl.token in ghlsync.yaml (or GHLSYNC_GHL_TOKEN)"
            )
        stored = _stored_kind(self._vault, key)
        if stored == "private":
            return (
                "GHL refuses the Private Integration token stored for this location: store a "
                f"valid one with `ghlsync locations add {key} --token ...`"
            )
        return (
            f"reconnect the app (`ghlsync auth login`, or install the app on location {key} again)"
        )

    def __repr__(self) -> str:
        return f"LocationTokens(static={sorted(self._keys)!r}, vault={self._vault!r})"


def _opened(vault: VaultLike | None) -> TokenVault:
    opened = open_vault(vault)
    assert opened is not None  # callers checked
    return opened


def _stored_kind(vault: VaultLike | None, key: str) -> str | None:
    """ "private" or "oauth" for the token stored for `key`; None when unknown."""
    try:
        opened = open_vault(vault)
        status = opened.status(key) if opened is not None else None
    except Exception:  # advice only: a failing lookup must not hide the 401 itself
        return None
    return status.kind if status is not None else None
