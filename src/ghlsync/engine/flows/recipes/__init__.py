"""Recipes: automations as data (`recipes:` in ghlsync.yaml and `recipes/*.yaml`).

Public API::

    InputSpec(name, type, required, description="")
    TriggerSpec(id, side, description, fields, source)    what `when: {trigger}` can name
    ActionSpec(id, side, description, inputs, operation, run)   what a `do:` step can run
    TRIGGERS: Mapping[str, TriggerSpec]    every trigger, by id ("dripjobs.lead.created")
    ACTIONS: Mapping[str, ActionSpec]      every action, by id ("create_task")
    Recipe                                 one validated recipe (name, when, if, do, after)
    RecipeBook(recipes)                    .enabled, .for_trigger(id), .cancelled_by(id), .named(n)
    recipe_book(config, source="ghlsync.yaml") -> RecipeBook   ConfigError lists every problem
    timer_status(engine, now) -> [TimerStatus(location_id, waiting, next_due)]
    timer_counts(engine, now) -> [TimerCounts(location_id, waiting, next_due, overdue, oldest_due)]

The worker runs them (`_hook`): see docs/recipes.md.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping

from ghlsync.engine.flows.recipes._actions import ACTIONS
from ghlsync.engine.flows.recipes._book import RecipeBook, recipe_book
from ghlsync.engine.flows.recipes._model import Recipe
from ghlsync.engine.flows.recipes._schedule import (
    TimerCounts,
    TimerStatus,
    timer_counts,
    timer_status,
)
from ghlsync.engine.flows.recipes._spec import ActionSpec, InputSpec, TriggerSpec


def _load_triggers() -> Mapping[str, TriggerSpec]:
    # recipes/_triggers.py is written in parallel; tolerate its absence for a short while
    try:
        module = importlib.import_module("ghlsync.engine.flows.recipes._triggers")
    except ModuleNotFoundError:  # pragma: no cover
        return {}
    triggers: Mapping[str, TriggerSpec] = module.TRIGGERS
    return triggers


TRIGGERS: Mapping[str, TriggerSpec] = _load_triggers()

__all__ = [
    "ACTIONS",
    "TRIGGERS",
    "ActionSpec",
    "InputSpec",
    "Recipe",
    "RecipeBook",
    "TimerCounts",
    "TimerStatus",
    "TriggerSpec",
    "recipe_book",
    "timer_counts",
    "timer_status",
]
