"""Static tokens: GHL Private Integration tokens, which never expire on their own."""

from __future__ import annotations

from collections.abc import Mapping

from ghlsync._secret import Secret
from ghlsync.ghl._errors import ReconnectNeededError

__all__ = ["StaticTokens"]


class StaticTokens:
    """A `TokenSource` over fixed tokens, one per location (or company) id."""

    def __init__(self, mapping: Mapping[str, str | Secret]) -> None:
        self._tokens = {
            key: value if isinstance(value, Secret) else Secret(value)
            for key, value in mapping.items()
        }

    async def token(self, key: str) -> Secret:
        """The configured token for `key`."""
        try:
            return self._tokens[key]
        except KeyError:
            raise ReconnectNeededError(
                f"no token configured for {key!r} (set GHLSYNC_GHL_TOKEN or run "
                "`ghlsync auth login`)"
            ) from None

    async def after_unauthorized(self, key: str, rejected: Secret) -> Secret | None:
        """A static token cannot be refreshed: the 401 stands."""
        return None

    def __repr__(self) -> str:
        return f"StaticTokens(keys={sorted(self._tokens)!r})"
