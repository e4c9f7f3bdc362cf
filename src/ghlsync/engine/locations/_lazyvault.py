"""The token vault of a long-running process, opened at first use.

`serve` and `worker` start before anyone may have stored a token: a location added with
`ghlsync locations add` or installed through GHL's INSTALL webhook while they run must be
synced without a restart. So the vault always exists, but its encryption key is read only
when a stored token is first needed: a single-location set-up (a configured `ghl.token`)
never needs `GHLSYNC_SECRET_KEY`, and a missing key shows up as the error of the location
that needs it, not as a process that cannot start.
"""

from __future__ import annotations

import threading

import sqlalchemy as sa

from ghlsync._clock import SYSTEM_CLOCK, Clock
from ghlsync.ghl._crypto import TokenCipher
from ghlsync.ghl._oauth import OAuthApp
from ghlsync.ghl._vault import TokenVault
from ghlsync.store._tables import ghl_connections

__all__ = ["LazyVault", "VaultLike", "open_vault"]


class LazyVault:
    """A `TokenVault` made on the first `open()`; see the module doc."""

    def __init__(
        self,
        engine: sa.Engine,
        *,
        cipher: TokenCipher | None = None,
        oauth: OAuthApp | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._engine = engine
        self._cipher = cipher
        self._oauth = oauth
        self._clock = clock
        self._vault: TokenVault | None = None
        self._lock = threading.Lock()

    def open(self) -> TokenVault:
        """The vault; raises `SecretKeyError` when the encryption key cannot be read (and
        tries again on the next call: a fixed key file is picked up without a restart)."""
        with self._lock:
            if self._vault is None:
                cipher = self._cipher or TokenCipher.from_env()
                self._vault = TokenVault(self._engine, cipher, self._oauth, clock=self._clock)
            return self._vault

    @property
    def opened(self) -> TokenVault | None:
        """The vault when it was opened already, else None."""
        return self._vault

    def has_connections(self) -> bool:
        """True when some GHL token is stored (reads the store, not the key)."""
        with self._engine.connect() as conn:
            found = conn.execute(sa.select(ghl_connections.c.key).limit(1)).first()
        return found is not None

    def __repr__(self) -> str:
        state = "open" if self._vault is not None else "not opened yet"
        return f"LazyVault(url={self._engine.url!r}, {state})"


VaultLike = TokenVault | LazyVault
"""What the token source and the installer accept: a vault, or one opened on demand."""


def open_vault(vault: VaultLike | None) -> TokenVault | None:
    """`vault` itself, the lazy one opened (may raise `SecretKeyError`), or None."""
    if isinstance(vault, LazyVault):
        return vault.open()
    return vault
