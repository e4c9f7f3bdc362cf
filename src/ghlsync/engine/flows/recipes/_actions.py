"""ACTIONS: every step a recipe can run, by id (what `ghlsync catalog` lists)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from ghlsync.engine.flows.recipes._actions_dripjobs import DRIPJOBS_ACTIONS
from ghlsync.engine.flows.recipes._actions_ghl import GHL_ACTIONS
from ghlsync.engine.flows.recipes._actions_messages import MESSAGE_ACTIONS
from ghlsync.engine.flows.recipes._actions_more import MORE_ACTIONS
from ghlsync.engine.flows.recipes._spec import ActionSpec

ACTIONS: Mapping[str, ActionSpec] = MappingProxyType(
    {spec.id: spec for spec in (*GHL_ACTIONS, *MORE_ACTIONS, *MESSAGE_ACTIONS, *DRIPJOBS_ACTIONS)}
)
