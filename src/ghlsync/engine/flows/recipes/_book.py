"""The recipes of one config, validated: `recipe_book(config)` → `RecipeBook` or ConfigError.

Structure comes from pydantic (`_model.py`); then every recipe is checked against the
registries: its trigger and `unless` triggers exist (an unknown one lists the near matches),
every step's action exists, its inputs are known and the required ones given, relative dates
parse, and names are unique. Each problem is one line naming the file, the key path, the bad
value and what is allowed, like the mapping's errors.
"""

from __future__ import annotations

import difflib
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pydantic

from ghlsync.engine.flows.recipes._dates import looks_relative, parse_relative
from ghlsync.engine.flows.recipes._model import Recipe, Step
from ghlsync.engine.flows.recipes._spec import ActionSpec, TriggerSpec
from ghlsync.mapping import AppConfig, ConfigError
from ghlsync.mapping._errors import show
from ghlsync.mapping._messages import key_path

SOURCE_KEY = "_source"  # set by the loader on recipes read from `recipes/*.yaml`


@dataclass(frozen=True, slots=True)
class RecipeBook:
    """Every recipe of a config; the enabled ones by trigger and by `unless` trigger."""

    recipes: tuple[Recipe, ...]

    @property
    def enabled(self) -> tuple[Recipe, ...]:
        """The recipes that run."""
        return tuple(r for r in self.recipes if r.enabled)

    def for_trigger(self, trigger: str) -> list[Recipe]:
        """Enabled recipes `when:` this trigger fires."""
        return [r for r in self.enabled if r.trigger == trigger]

    def cancelled_by(self, trigger: str) -> list[Recipe]:
        """Enabled recipes whose waiting runs this trigger cancels (`after.unless`)."""
        return [r for r in self.enabled if r.after is not None and trigger in r.after.unless]

    def triggers(self) -> frozenset[str]:
        """Every trigger some enabled recipe starts on or is cancelled by."""
        found = {r.trigger for r in self.enabled}
        for recipe in self.enabled:
            found.update(recipe.after.unless if recipe.after else ())
        return frozenset(found)

    def named(self, name: str) -> Recipe | None:
        """The recipe called `name` (enabled or not)."""
        return next((r for r in self.recipes if r.name == name), None)


def raw_recipes(config: AppConfig) -> list[Any]:
    """The `recipes:` entries of a config, as loaded (file first, then `recipes/*.yaml`)."""
    return list(getattr(config, "recipes", None) or [])


_lock = threading.Lock()
_books: dict[int, tuple[AppConfig, RecipeBook]] = {}


def recipe_book(config: AppConfig, source: str = "ghlsync.yaml") -> RecipeBook:
    """The validated recipes of `config` (cached per config object); ConfigError lists every
    problem."""
    with _lock:
        cached = _books.get(id(config))
    if cached is not None and cached[0] is config:
        return cached[1]
    book = build_book(raw_recipes(config), source, _triggers(config), _actions())
    with _lock:
        if len(_books) > 64:
            _books.clear()
        _books[id(config)] = (config, book)
    return book


def _triggers(config: AppConfig) -> Mapping[str, TriggerSpec]:
    """The preset's triggers plus those of the config's own events."""
    import importlib

    from ghlsync.engine.flows.recipes import TRIGGERS

    try:
        module = importlib.import_module("ghlsync.engine.flows.recipes._triggers")
    except ModuleNotFoundError:  # pragma: no cover
        return TRIGGERS
    own: Mapping[str, TriggerSpec] = module.dripjobs_triggers(config)
    return {**TRIGGERS, **own}


def _actions() -> Mapping[str, ActionSpec]:
    from ghlsync.engine.flows.recipes._actions import ACTIONS

    return ACTIONS


def build_book(
    raw: Sequence[Any],
    source: str,
    triggers: Mapping[str, TriggerSpec],
    actions: Mapping[str, ActionSpec],
) -> RecipeBook:
    """Validate raw `recipes:` entries against the registries."""
    problems: list[str] = []
    recipes: list[Recipe] = []
    positions: dict[str, int] = {}
    for index, entry in enumerate(raw):
        where, at = _where(entry, source, index)
        recipe = _parse(entry, where, at, problems)
        if recipe is None:
            continue
        problems.extend(_checked(recipe, where, at, triggers, actions))
        if recipe.name in positions:
            problems.append(f"{where}: {key_path((*at, 'name'))}: {recipe.name!r} is used twice")
        positions[recipe.name] = index
        recipes.append(recipe)
    if problems:
        raise ConfigError(problems)
    return RecipeBook(tuple(recipes))


def _where(entry: Any, source: str, index: int) -> tuple[str, tuple[str | int, ...]]:
    """The file and key path an entry is reported under."""
    if isinstance(entry, dict) and isinstance(entry.get(SOURCE_KEY), str):
        file, _, position = entry[SOURCE_KEY].partition("#")
        return file, ((int(position),) if position.isdigit() else ())
    return source, ("recipes", index)


def _parse(entry: Any, where: str, at: tuple[str | int, ...], problems: list[str]) -> Recipe | None:
    try:
        return Recipe.model_validate(entry)
    except pydantic.ValidationError as error:
        for item in error.errors():
            loc = (*at, *item["loc"])
            problems.append(_pydantic_line(where, loc, item))
        return None


def _pydantic_line(where: str, loc: tuple[Any, ...], item: Any) -> str:
    path = key_path(tuple(p for p in loc if not (isinstance(p, str) and "[" in p)))
    kind, value = item["type"], item.get("input")
    if kind == "extra_forbidden":
        allowed = _allowed_at(loc)
        hint = near(str(loc[-1]), allowed.split(", "))
        return f"{where}: {path}: unknown key{hint}; allowed here: {allowed}"
    if kind == "missing":
        return f"{where}: {path}: is required"
    if kind in ("value_error", "assertion_error"):
        return f"{where}: {path}: " + str(item["msg"]).removeprefix("Value error, ")
    message = str(item["msg"]).replace("Input should be", "must be")
    return f"{where}: {path}: {show(value)} is invalid: {message}"


_ALLOWED = {
    "recipe": "name, description, enabled, when, if, do, after",
    "when": "trigger, then field conditions",
    "after": "wait, unless",
    "condition": "equals, not, in, not_in, exists, contains, starts_with, gt, gte, lt, lte",
}


def _allowed_at(loc: tuple[Any, ...]) -> str:
    names = [p for p in loc if isinstance(p, str)]
    if "after" in names[-2:-1]:
        return _ALLOWED["after"]
    if any(n in ("if", "if_", "conditions") for n in names):
        return _ALLOWED["condition"]
    return _ALLOWED["recipe"]


def near(name: str, known: Iterable[str]) -> str:
    """`; did you mean 'x' or 'y'?` for the closest known names, or the empty string."""
    close = difflib.get_close_matches(name, sorted(known), n=3, cutoff=0.6)
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def _checked(
    recipe: Recipe,
    where: str,
    at: tuple[str | int, ...],
    triggers: Mapping[str, TriggerSpec],
    actions: Mapping[str, ActionSpec],
) -> list[str]:
    problems = []
    named = [((*at, "when", "trigger"), recipe.trigger)]
    if recipe.after is not None:
        named += [((*at, "after", "unless", i), t) for i, t in enumerate(recipe.after.unless)]
    for loc, trigger in named:
        if triggers and trigger not in triggers:
            hint = near(trigger, triggers) or " (`ghlsync catalog` lists every trigger)"
            problems.append(f"{where}: {key_path(loc)}: {trigger!r} is not a trigger{hint}")
    for index, step in enumerate(recipe.do):
        problems.extend(_step_problems(step, where, (*at, "do", index), actions))
    return problems


def _step_problems(
    step: Step, where: str, at: tuple[str | int, ...], actions: Mapping[str, ActionSpec]
) -> list[str]:
    spec = actions.get(step.action)
    if spec is None:
        hint = near(step.action, actions) or "; allowed: " + ", ".join(sorted(actions))
        return [f"{where}: {key_path(at)}: {step.action!r} is not an action{hint}"]
    try:
        inputs = step_inputs(spec, step.inputs)
    except ValueError as error:
        return [f"{where}: {key_path((*at, step.action))}: {error}"]
    problems = []
    allowed = {i.name for i in spec.inputs}
    for name in inputs:
        if name not in allowed and name not in spec.retired:
            known = ", ".join(sorted(allowed)) or "none"
            problems.append(
                f"{where}: {key_path((*at, step.action, name))}: unknown input{near(name, allowed)}"
                f"; allowed: {known}"
            )
    for item in spec.inputs:
        if item.required and inputs.get(item.name) in (None, "", []):
            problems.append(f"{where}: {key_path((*at, step.action, item.name))}: is required")
        elif item.type == "date" and isinstance(inputs.get(item.name), str):
            problems.extend(_date_problem(where, (*at, step.action, item.name), inputs[item.name]))
    return problems


def _date_problem(where: str, loc: tuple[str | int, ...], text: str) -> list[str]:
    if not looks_relative(text):
        return []
    try:
        parse_relative(text)
    except ValueError as error:
        return [f"{where}: {key_path(loc)}: {error}"]
    return []


def step_inputs(spec: ActionSpec, raw: Any) -> dict[str, Any]:
    """A step's inputs as a mapping: a bare value (or list) fills the action's first input;
    an input's older name (`InputSpec.aliases`) is read as its name."""
    if raw is None:
        return {}
    if isinstance(raw, dict) and not _is_value_of_first(spec, raw):
        return _renamed(spec, {str(k): v for k, v in raw.items()})
    if not spec.inputs:
        raise ValueError(f"{show(raw)}: this action takes no inputs")
    return {spec.inputs[0].name: raw}


def _renamed(spec: ActionSpec, inputs: dict[str, Any]) -> dict[str, Any]:
    for item in spec.inputs:
        for alias in item.aliases:
            if alias not in inputs:
                continue
            if item.name in inputs:
                raise ValueError(
                    f"{alias} is the older name of {item.name}, which is given too; give one"
                )
            inputs = {item.name if k == alias else k: v for k, v in inputs.items()}
    return inputs


def _is_value_of_first(spec: ActionSpec, raw: dict[Any, Any]) -> bool:
    # `update_contact: {source: Website}` is the mapping its only input wants.
    first = spec.inputs[0] if spec.inputs else None
    return first is not None and first.type == "mapping" and first.name not in raw
