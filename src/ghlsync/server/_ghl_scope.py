"""Which signed GHL webhooks are ours to act on.

GHL signs the webhooks of every marketplace app with one shared key, so a valid signature says
only "GHL sent this", not "this is for us": a signed INSTALL or UNINSTALL of another app,
relayed within the replay window, verifies just as well. So:

- app events (INSTALL, UNINSTALL, PLAN_CHANGE) carry an `appId`; they are acted on only when it
  is our app's (`ghl.app_id`, else derived from `GHLSYNC_GHL_CLIENT_ID`), and refused when no
  app is configured at all;
- every other event (ContactCreate and the rest) carries no `appId`; it is acted on only for a
  location this server serves (`serves_location`).

A refusal is a 403 whose `error` names the reason; GHL does not retry it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ghlsync.engine.flows.to_dripjobs._events import event_location
from ghlsync.engine.locations._directory import LocationDirectory
from ghlsync.mapping import AppConfig
from ghlsync.server._responses import Rejection

__all__ = [
    "APP_EVENTS",
    "EventScope",
    "app_id_from_client_id",
    "configured_app_id",
    "serves_location",
]

APP_EVENTS = frozenset({"INSTALL", "UNINSTALL", "PLAN_CHANGE", "PlanChange"})
"""Event types about the app itself; GHL puts the app's id in their `appId`."""


def app_id_from_client_id(client_id: str | None) -> str | None:
    """The app id in a GHL OAuth client id (`<appId>-<suffix>`), or None."""
    if not client_id:
        return None
    return client_id.split("-", 1)[0] or None


def configured_app_id(config: AppConfig, env: Mapping[str, str] | None = None) -> str | None:
    """`ghl.app_id`, else the one in `GHLSYNC_GHL_CLIENT_ID`, else None (no app configured)."""
    env = os.environ if env is None else env
    return config.ghl.app_id or app_id_from_client_id(env.get("GHLSYNC_GHL_CLIENT_ID"))


def serves_location(directory: LocationDirectory, location_id: str | None) -> bool:
    """True for the configured `ghl.location_id` and for installed (active) stored locations.

    Reads the store (one primary-key lookup): call it off the event loop.
    """
    if not location_id:
        return False
    if location_id == directory.base_config.ghl.location_id:
        return True
    row = directory.location_row(location_id)
    return row is not None and row.active


@dataclass(frozen=True, slots=True)
class EventScope:
    """Decides, per verified event, whether this server acts on it (see the module doc)."""

    app_id: str | None
    serves: Callable[[str | None], bool]

    def refusal(self, event: Mapping[str, Any]) -> Rejection | None:
        """None when the event is ours; else the 403 to answer. May read the store."""
        kind = str(event.get("type") or "")
        if kind in APP_EVENTS:
            return self._app_refusal(kind, event.get("appId"))
        location = event_location(event)  # invoices and orders name it in `altId`
        if location is not None and self.serves(location):
            return None
        return Rejection(
            403,
            "location_not_served",
            f"this server does not serve the location of this {kind or 'untyped'} event",
        )

    def _app_refusal(self, kind: str, app_id: object) -> Rejection | None:
        if self.app_id is None:
            return Rejection(
                403,
                "app_not_configured",
                f"{kind} refused: no GHL app is configured (set ghl.app_id or "
                "GHLSYNC_GHL_CLIENT_ID)",
            )
        if app_id != self.app_id:
            return Rejection(403, "foreign_app", f"{kind} refused: it is for another GHL app")
        return None
