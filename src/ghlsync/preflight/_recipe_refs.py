"""What the enabled recipes name in GHL: workflows, pipelines and their stages, users,
calendars (read from `ghlsync.engine.flows.recipes`; none when the config has no `recipes:`).

A value that is filled in per event (`{{...}}` or `{...}`) cannot be checked before it runs
and is left out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ghlsync.mapping import AppConfig, ConfigError

__all__ = ["RecipeRefs", "recipe_refs"]

_WORKFLOW_ACTIONS = ("add_to_workflow", "remove_from_workflow")
_CARD_ACTIONS = ("upsert_opportunity", "move_opportunity", "set_opportunity_status")
_USER_INPUTS = {"create_task": "assign", "assign_contact": "user"}


@dataclass
class RecipeRefs:
    """Names by kind, each with where it was found (`recipe NAME`)."""

    workflows: dict[str, str] = field(default_factory=dict)
    pipelines: dict[str, str] = field(default_factory=dict)
    stages: dict[tuple[str, str], str] = field(default_factory=dict)  # (pipeline, stage)
    users: dict[str, str] = field(default_factory=dict)  # ids, or names of `users:`
    calendars: dict[str, str] = field(default_factory=dict)


def recipe_refs(config: AppConfig) -> RecipeRefs:
    """Every fixed GHL name the enabled recipes use."""
    found = RecipeRefs()
    for recipe in _enabled(config):
        where = f"recipe {recipe.name}"
        for step in recipe.do:
            _step(
                found, step.action, step.inputs if isinstance(step.inputs, Mapping) else {}, where
            )
    return found


def _enabled(config: AppConfig) -> list[Any]:
    if not getattr(config, "recipes", None):
        return []
    try:
        from ghlsync.engine.flows.recipes import recipe_book
    except ImportError:  # pragma: no cover - recipes ship with ghlsync
        return []
    try:
        return list(recipe_book(config).enabled)
    except ConfigError:
        return []  # `ghlsync check` loaded the config first: its recipes are valid


def _step(found: RecipeRefs, action: str, inputs: Mapping[str, Any], where: str) -> None:
    if action in _WORKFLOW_ACTIONS and _fixed(inputs.get("workflow")):
        found.workflows.setdefault(str(inputs["workflow"]), where)
    if action in _CARD_ACTIONS and _fixed(inputs.get("pipeline")):
        pipeline = str(inputs["pipeline"])
        found.pipelines.setdefault(pipeline, where)
        if _fixed(inputs.get("stage")):
            found.stages.setdefault((pipeline, str(inputs["stage"])), where)
    user = _USER_INPUTS.get(action)
    if user is not None and _fixed(inputs.get(user)):
        found.users.setdefault(str(inputs[user]), where)
    if action == "create_appointment" and _fixed(inputs.get("calendar")):
        found.calendars.setdefault(str(inputs["calendar"]), where)


def _fixed(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip()) and "{" not in value
