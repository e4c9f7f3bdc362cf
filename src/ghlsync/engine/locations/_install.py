"""Installing and uninstalling locations: what GHL's INSTALL/UNINSTALL webhooks and the
`ghlsync locations` commands do.

Install: mint the location's token from the agency connection when there is one (the vault
stores it and re-mints it when due), then create (or reactivate) the `locations` row and a
DripJobs connection with a fresh secret. An agency-level install (a `companyId` and no
`locationId`) installs every location GHL lists for the app. Uninstall: mark the location
uninstalled and revoke its connections; its id map, sync state and queue are kept.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import sqlalchemy as sa

from ghlsync._clock import SYSTEM_CLOCK, Clock
from ghlsync._secret import Secret
from ghlsync.engine.locations._directory import LocationDirectory
from ghlsync.engine.locations._lazyvault import VaultLike, open_vault
from ghlsync.engine.locations._rows import (
    Registered,
    get_location,
    list_locations,
    register_location,
    uninstall_location,
)
from ghlsync.ghl._crypto import SecretKeyError
from ghlsync.ghl._errors import FatalError
from ghlsync.ghl._oauth import OAuthApp
from ghlsync.ghl._vault import TokenVault

__all__ = ["Installed", "Installer", "webhook_path"]

_log = logging.getLogger("ghlsync.locations")
_PAGE = 100


def webhook_path(connection_id: str, event: str = "<event>") -> str:
    """The path a Zap posts to for this connection."""
    return f"/hooks/dripjobs/{connection_id}/{event}"


@dataclass(frozen=True, slots=True)
class Installed:
    """One installed location: its connection, a secret when new, and where its token is."""

    location_id: str
    connection_id: str
    new_secret: Secret | None
    token: str  # "minted" (from the agency token), "stored" (already in the vault), "none"


class Installer:
    """Adds and removes locations; see the module doc."""

    def __init__(
        self,
        engine: sa.Engine,
        directory: LocationDirectory,
        vault: VaultLike | None = None,
        oauth: OAuthApp | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._engine = engine
        self._directory = directory
        self._vaults = vault
        self._oauth = oauth
        self._clock = clock

    @property
    def _vault(self) -> TokenVault | None:
        # Opened on first use (a LazyVault): installs arriving after start-up get tokens too.
        return open_vault(self._vaults)

    async def install(
        self, *, location_id: str | None, company_id: str | None, app_id: str | None = None
    ) -> list[Installed]:
        """A location-level install, or (no `location_id`) every location of the agency."""
        if location_id:
            return [await self.install_location(location_id, company_id)]
        if not company_id:
            raise ValueError("an install names a locationId or a companyId")
        return [
            await self.install_location(found, company_id)
            for found in await self._agency_locations(company_id, app_id)
        ]

    async def install_location(
        self,
        location_id: str,
        company_id: str | None = None,
        name: str | None = None,
        *,
        replace_private: bool = False,
    ) -> Installed:
        """Mint (when possible) the location's token, then register it with a connection.

        A Private Integration token stored for the location is kept: only `replace_private`
        (the user asked for a minted token: `locations add --from-company`) swaps it.
        """
        company_id = company_id or await self._known_company(location_id)
        token = await self._token_for(location_id, company_id, replace_private)
        registered: Registered = await asyncio.to_thread(
            register_location,
            self._engine,
            self._directory.cipher,
            location_id,
            now=self._clock.now(),
            company_id=company_id,
            name=name,
        )
        await asyncio.to_thread(self._directory.claim, location_id)  # and invalidates
        # (`POST /hooks/ghl` logs the webhook URL for people; `locations add` prints it)
        _log.debug("location %s registered, connection %s", location_id, registered.connection_id)
        return Installed(location_id, registered.connection_id, registered.new_secret, token)

    async def uninstall(self, *, location_id: str | None, company_id: str | None) -> list[str]:
        """Uninstall one location, or (no `location_id`) every location of the agency."""
        if location_id:
            targets = [location_id]
        else:
            rows = await asyncio.to_thread(list_locations, self._engine)
            targets = [r.location_id for r in rows if company_id and r.company_id == company_id]
        done = [target for target in targets if await self._uninstall_one(target)]
        return done

    async def _uninstall_one(self, location_id: str) -> bool:
        now = self._clock.now()
        changed = await asyncio.to_thread(uninstall_location, self._engine, location_id, now=now)
        self._directory.invalidate(location_id)
        await self._forget_oauth_token(location_id)
        if changed:
            _log.info("location %s uninstalled: its connections are revoked", location_id)
        return changed

    async def _forget_oauth_token(self, location_id: str) -> None:
        # GHL revokes the app's tokens on uninstall; a Private Integration token stays valid.
        try:
            vault = self._vault
        except SecretKeyError as exc:  # the uninstall itself must not depend on the key
            _log.warning("uninstall of %s: its token is left stored (%s)", location_id, exc)
            return
        if vault is None:
            return
        stored = await asyncio.to_thread(vault.status, location_id)
        if stored is not None and stored.kind == "oauth" and stored.user_type == "Location":
            await asyncio.to_thread(vault.remove, location_id)

    async def _token_for(self, location_id: str, company_id: str | None, replace: bool) -> str:
        vault = self._vault
        if vault is None:
            return "none"
        stored = await asyncio.to_thread(vault.status, location_id)
        if stored is not None and stored.kind == "private" and not replace:
            if company_id and company_id != location_id:
                _log.info(
                    "location %s keeps its Private Integration token; to use a token minted "
                    "from agency %s instead: `ghlsync locations add %s --from-company %s`",
                    location_id,
                    company_id,
                    location_id,
                    company_id,
                )
            return "stored"
        if company_id and company_id != location_id and await self._has(company_id):
            try:
                await vault.add_location(company_id, location_id)
            except FatalError as exc:  # keep the install; the worker reports the token
                _log.warning("could not mint a token for %s: %s", location_id, exc)
                return "none"
            return "minted"
        if await self._has(location_id):
            return "stored"
        _log.warning(
            "location %s has no GHL token: store one with `ghlsync auth login` or "
            "`ghlsync locations add %s --token ...`",
            location_id,
            location_id,
        )
        return "none"

    async def _known_company(self, location_id: str) -> str | None:
        """The agency of a location GHL did not name one for ("future locations" installs
        may leave `companyId` out): the one it had before, else the only agency stored."""
        row = await asyncio.to_thread(get_location, self._engine, location_id)
        if row is not None and row.company_id:
            return row.company_id
        if self._vault is None:
            return None
        stored = await asyncio.to_thread(self._vault.connections)
        agencies = [c.key for c in stored if c.user_type == "Company"]
        return agencies[0] if len(agencies) == 1 else None

    async def _has(self, key: str) -> bool:
        assert self._vault is not None
        return await asyncio.to_thread(self._vault.status, key) is not None

    async def _agency_locations(self, company_id: str, app_id: str | None) -> list[str]:
        if self._vault is None or self._oauth is None or not app_id:
            _log.warning("agency install of %s: no agency connection or app id", company_id)
            return []
        if not await self._has(company_id):
            _log.warning(
                "agency install of %s but no agency token is stored: run "
                "`ghlsync auth login --user-type Company`",
                company_id,
            )
            return []
        company_token = await self._vault.token(company_id)
        found: list[str] = []
        skip = 0
        while True:
            page = await self._oauth.installed_locations(
                company_token,
                company_id,
                app_id,
                skip=str(skip),
                limit=str(_PAGE),
                isInstalled="true",
            )
            found += [str(item["_id"]) for item in page if item.get("isInstalled", True)]
            if len(page) < _PAGE:
                return found
            skip += _PAGE
