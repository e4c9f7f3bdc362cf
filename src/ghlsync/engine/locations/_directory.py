"""Where a location's work goes: its calendar, its mapper (with its override), its connections.

`LocationDirectory` answers, per location id, the `LocationContext` the worker builds its
`FlowContext` from, and, per connection id, the DripJobs connection the receiver verifies a
delivery against. Both come from the store (`locations`, `dripjobs_connections`) and are
cached for `refresh_seconds`, so the hot paths do no query per item; a change made in this
process (install, uninstall) calls `invalidate` and is seen at once, a change made by another
process within `refresh_seconds`.

The single-location config keeps working without any row: `ghl.location_id` is a location
with the base mapper and `ghl.calendar_id`. Work for a location that has no row is synced
with the base mapping too; only an `uninstalled` row stops a location.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from dataclasses import dataclass, replace

import sqlalchemy as sa

from ghlsync._clock import SYSTEM_CLOCK, Clock
from ghlsync.engine.locations._environment import (
    EnvironmentMismatchError,
    claim_environment,
    environment_conflict,
    recorded_environments,
)
from ghlsync.engine.locations._override import apply_override
from ghlsync.engine.locations._rows import ConnectionRow, LocationRow, get_connection, get_location
from ghlsync.ghl._crypto import TokenCipher
from ghlsync.ghl._errors import RetriableError
from ghlsync.ghl._seams import Budget, RateLimiter
from ghlsync.mapping import AppConfig, ConfigError, Mapper

__all__ = [
    "LocationContext",
    "LocationDirectory",
    "LocationGate",
    "LocationUninstalledError",
]

DEFAULT_REFRESH_SECONDS = 5.0
_MAX_CACHED = 10_000  # connections; far more than any agency has


@dataclass(frozen=True, slots=True)
class LocationContext:
    """What the worker needs to sync one location's work."""

    location_id: str
    calendar_id: str | None
    mapper: Mapper
    config: AppConfig
    active: bool = True
    # Set when the location or its token belongs to another environment (`_environment.py`).
    conflict: str | None = None
    api_version: str = "v2"  # GHL API family: the stored one, else the config's


class LocationUninstalledError(RetriableError):
    """The location was uninstalled: its work is not sent, and stays queued for a reinstall."""


class LocationDirectory:
    """Locations and DripJobs connections from the store, cached; see the module doc."""

    def __init__(
        self,
        engine: sa.Engine,
        base_config: AppConfig,
        cipher: TokenCipher | None = None,
        *,
        mapper: Mapper | None = None,
        clock: Clock = SYSTEM_CLOCK,
        refresh_seconds: float = DEFAULT_REFRESH_SECONDS,
    ) -> None:
        self.engine = engine
        self.base_config = base_config
        self._cipher = cipher
        self._clock = clock
        self._ttl = refresh_seconds
        self._lock = threading.Lock()
        base_mapper = mapper or Mapper(base_config)
        self._mappers: dict[str | None, tuple[AppConfig, Mapper]] = {
            None: (base_config, base_mapper)
        }
        self._contexts: dict[str, tuple[float, LocationContext]] = {}
        self._connections: dict[str, tuple[float, ConnectionRow]] = {}
        self._generation = 0  # bumped by invalidate: a load that raced it is not cached

    def __repr__(self) -> str:
        return f"LocationDirectory(url={self.engine.url!r})"

    @property
    def base_mapper(self) -> Mapper:
        """The mapper of the base config (locations without an override)."""
        return self._mappers[None][1]

    @property
    def cipher(self) -> TokenCipher:
        """The cipher for connection secrets (from the environment when none was given)."""
        if self._cipher is None:
            self._cipher = TokenCipher.from_env()
        return self._cipher

    # -- locations -------------------------------------------------------------------------

    def get(self, location_id: str) -> LocationContext:
        """The location's context (cached); `active` is False once it was uninstalled."""
        cached = self._contexts.get(location_id)
        if cached is not None and cached[0] > self._clock.monotonic():
            return cached[1]
        generation = self._generation
        context = self._load(location_id)
        with self._lock:
            if generation == self._generation:
                self._contexts[location_id] = (self._clock.monotonic() + self._ttl, context)
        return context

    async def aget(self, location_id: str) -> LocationContext:
        """`get`, reading the store off the event loop only when the cache is stale."""
        cached = self._contexts.get(location_id)
        if cached is not None and cached[0] > self._clock.monotonic():
            return cached[1]
        return await asyncio.to_thread(self.get, location_id)

    async def active(self, location_id: str) -> LocationContext:
        """The context of a location whose work may be sent; raises `LocationUninstalledError`."""
        context = await self.aget(location_id)
        if context.conflict is not None:
            raise EnvironmentMismatchError(context.conflict)
        if not context.active:
            raise LocationUninstalledError(
                f"location {location_id} was uninstalled; its work is kept for a reinstall"
            )
        return context

    def api_version(self, location_id: str) -> str:
        """The GHL API version ("v2" or "v3") the location is called with (for `GHLClient`)."""
        return self.get(location_id).api_version

    def claim(self, location_id: str) -> None:
        """Record this process's environment on the location's rows that have none."""
        claim_environment(self.engine, location_id, self.base_config.environment)
        self.invalidate(location_id)

    def is_active(self, location_id: str) -> bool:
        """False when the location was uninstalled."""
        return self.get(location_id).active

    def invalidate(self, location_id: str | None = None) -> None:
        """Forget cached contexts and connections (of one location, or all)."""
        with self._lock:
            self._generation += 1
            if location_id is None:
                self._contexts.clear()
                self._connections.clear()
                return
            self._contexts.pop(location_id, None)
            stale = [k for k, (_, c) in self._connections.items() if _belongs(c, location_id)]
            for key in stale:
                del self._connections[key]

    def _load(self, location_id: str) -> LocationContext:
        context = self._load_row(location_id)
        running = self.base_config.environment
        if running is None:
            return context
        recorded = recorded_environments(self.engine, location_id)
        conflict = environment_conflict(recorded, running, location_id)
        return context if conflict is None else replace(context, conflict=conflict)

    def _load_row(self, location_id: str) -> LocationContext:
        row = get_location(self.engine, location_id)
        if row is None:
            return self._context(location_id, None, self._default_calendar(location_id), True)
        calendar = row.calendar_id or self._default_calendar(location_id)
        context = self._context(location_id, row.mapping_override, calendar, row.active)
        return replace(context, api_version=row.api_version) if row.api_version else context

    def _context(
        self, location_id: str, override: str | None, calendar_id: str | None, active: bool
    ) -> LocationContext:
        config, mapper = self._mapper_for(location_id, override)
        api = config.ghl.api_version
        return LocationContext(location_id, calendar_id, mapper, config, active, api_version=api)

    def _mapper_for(self, location_id: str, override: str | None) -> tuple[AppConfig, Mapper]:
        # One mapper per distinct override text: a refresh does not rebuild it.
        key = override if override and override.strip() else None
        found = self._mappers.get(key)
        if found is None:
            name = f"mapping override of location {location_id}"
            config = apply_override(self.base_config, key, name)
            found = (config, Mapper(config))
            with self._lock:
                self._mappers[key] = found
        return found

    def _default_calendar(self, location_id: str) -> str | None:
        ghl = self.base_config.ghl
        return ghl.calendar_id if location_id == ghl.location_id else None

    # -- connections -----------------------------------------------------------------------

    def connection(self, connection_id: str) -> ConnectionRow | None:
        """The DripJobs connection with this id (revoked ones too), or None.

        Found ones are cached; unknown ids are not, so URLs guessed at random cannot fill
        the cache (each costs one primary-key lookup).
        """
        cached = self._connections.get(connection_id)
        if cached is not None and cached[0] > self._clock.monotonic():
            return cached[1]
        generation = self._generation
        found = get_connection(self.engine, lambda: self.cipher, connection_id)
        if found is not None:
            with self._lock:
                if len(self._connections) >= _MAX_CACHED:
                    self._connections.clear()
                if generation == self._generation:
                    expires = self._clock.monotonic() + self._ttl
                    self._connections[connection_id] = (expires, found)
        return found

    def location_row(self, location_id: str) -> LocationRow | None:
        """The stored row (uncached), for status displays."""
        return get_location(self.engine, location_id)


def _belongs(connection: ConnectionRow, location_id: str) -> bool:
    return connection.location_id == location_id


class LocationGate:
    """A `RateLimiter` that also says "no budget" for uninstalled locations.

    The worker claims only locations its limiter says may go now, so an uninstalled
    location's work stays pending (kept for a reinstall) instead of being claimed and failed.
    """

    def __init__(self, limiter: RateLimiter, directory: LocationDirectory) -> None:
        self._limiter = limiter
        self._directory = directory

    async def acquire(self, key: str) -> None:
        """The wrapped limiter's `acquire`."""
        await self._limiter.acquire(key)

    async def observe(self, key: str, status: int, headers: Mapping[str, str]) -> None:
        """The wrapped limiter's `observe`."""
        await self._limiter.observe(key, status, headers)

    async def has_budget(self, key: str) -> bool:
        """False for an uninstalled location, else the wrapped limiter's answer."""
        try:
            active = (await self._directory.aget(key)).active
        except ConfigError:
            active = True  # claimed, so the worker reports the bad override on the item
        return active and await self._limiter.has_budget(key)

    async def budget(self, key: str) -> Budget:
        """The wrapped limiter's `budget`."""
        return await self._limiter.budget(key)
