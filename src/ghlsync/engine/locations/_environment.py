"""Which environment (`environments:` of ghlsync.yaml) a location and its credentials belong to.

Rows are stamped with the environment of the process that wrote them (an install, `locations
add`, `auth login`, the console's Connect); a row from before environments (NULL) is stamped by
the first environment that writes for it. The worker then refuses to send a location's events
when the location or its stored token belongs to another environment than the one it runs:
a sandbox event is never written to production GHL with production's token, nor the reverse,
even when both environments share one database.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from ghlsync.ghl._errors import FatalError
from ghlsync.store import begin_immediate
from ghlsync.store._tables import ghl_connections
from ghlsync.store._tables_locations import dripjobs_connections, locations

__all__ = [
    "EnvironmentMismatchError",
    "Recorded",
    "claim_environment",
    "environment_conflict",
    "recorded_environments",
]


class EnvironmentMismatchError(FatalError):
    """The location's events or token belong to another environment: dead-letter, never send."""


@dataclass(frozen=True, slots=True)
class Recorded:
    """The environments stored for one location (None: not recorded)."""

    location: str | None = None
    token: str | None = None


def claim_environment(engine: sa.Engine, location_id: str, environment: str | None) -> None:
    """Stamp the location, its DripJobs connections and its stored token with `environment`
    where none is recorded yet (a recorded one is never changed). No-op for None."""
    if environment is None:
        return
    with begin_immediate(engine) as conn:
        for table, key in (
            (locations, locations.c.location_id),
            (dripjobs_connections, dripjobs_connections.c.location_id),
            (ghl_connections, ghl_connections.c.key),
        ):
            conn.execute(
                table.update()
                .where(key == location_id, table.c.environment.is_(None))
                .values(environment=environment)
            )


def recorded_environments(bind: sa.Engine | sa.Connection, location_id: str) -> Recorded:
    """What the store says about the location's environment and its token's."""
    location = sa.select(locations.c.environment).where(locations.c.location_id == location_id)
    token = sa.select(ghl_connections.c.environment).where(ghl_connections.c.key == location_id)
    if isinstance(bind, sa.Connection):
        return Recorded(bind.execute(location).scalar(), bind.execute(token).scalar())
    with bind.connect() as conn:
        return Recorded(conn.execute(location).scalar(), conn.execute(token).scalar())


def environment_conflict(recorded: Recorded, running: str | None, location_id: str) -> str | None:
    """Why this process must not send for the location, or None when it may.

    A process that runs no environment, and rows that record none, are never refused.
    """
    if running is None:
        return None
    for what, theirs in (("location", recorded.location), ("GHL token", recorded.token)):
        if theirs is not None and theirs != running:
            return (
                f"location {location_id}: its {what} belongs to the {theirs!r} environment and "
                f"this process runs {running!r}, so its events are not sent with {running!r}'s "
                f"credentials. Fix: run its events with --env {theirs} (GHLSYNC_ENV={theirs}), "
                "or give each environment its own database_url (docs/environments.md)"
            )
    return None
