"""What a recipe can listen to (TriggerSpec) and do (ActionSpec): the catalog's entries.

The registries built from these (`ACTIONS`, `TRIGGERS`) are what the engine runs and what
`ghlsync catalog` lists, so an entry cannot exist without its implementation.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal


@dataclass(frozen=True, slots=True)
class InputSpec:
    """One named value: an action's input or a field a trigger's event carries."""

    name: str
    type: str
    required: bool
    description: str = ""
    aliases: tuple[str, ...] = ()
    """Older names of this input a step may still use (read as `name`)."""


@dataclass(frozen=True, slots=True)
class TriggerSpec:
    """An event a recipe's `when: {trigger: ...}` can name."""

    id: str
    """ "dripjobs.<event>" (POSTed at /hooks/dripjobs/<event>) or "ghl.<GHL webhook type>"."""
    side: Literal["dripjobs", "ghl"]
    description: str
    fields: tuple[InputSpec, ...]
    """Fields a recipe's `if:` conditions and templates can use."""
    source: str
    """Where it comes from, e.g. "POST /hooks/dripjobs/lead.created"."""


@dataclass(frozen=True, slots=True)
class ActionSpec:
    """A step a recipe's `do:` can run."""

    id: str
    """The step's name in a recipe, e.g. "create_task" or "dripjobs.move_deal"."""
    side: Literal["ghl", "dripjobs"]
    description: str
    inputs: tuple[InputSpec, ...]
    operation: str
    """The API operation behind it ("POST /contacts/{contactId}/tasks") or write-back action."""
    run: Callable[..., Awaitable[Any]]
    """The implementation the recipe executor calls: ``await run(step_context, inputs)``."""
    retired: tuple[str, ...] = ()
    """Input names older configs may give that the action no longer uses: accepted (a config
    keeps loading), passed to `run`, which leaves them out and says so."""
