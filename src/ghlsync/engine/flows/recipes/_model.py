"""The typed shape of one recipe (`recipes:` in ghlsync.yaml, or a file in `recipes/`).

::

    - name: new-lead-onboarding            # lower case, digits, - and _ (at most 40)
      enabled: true                        # default true; the shipped ones say false
      when: { trigger: dripjobs.lead.created, lead_source: Website }   # + conditions
      if:   { lead_source: { in: [Website, Angi] } }
      do:
        - create_task: { title: "Call {first_name}", due: "+0d +5m" }
        - add_tags: [new-lead]             # a bare value fills the action's first input
      after: { wait: 3d, unless: dripjobs.proposal.accepted }

Structure only (pydantic, unknown keys are errors); what needs the registries (a trigger or
action that exists, its inputs, template names) is checked in `_check.py`.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from ghlsync.engine.flows.recipes._dates import parse_duration

Scalar = str | int | float | bool
NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,39}$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class Condition(_Model):
    """One test on one field; every test given must hold. A bare value means `equals`,
    a bare list means `in`. Text compares case-insensitively, trimmed."""

    equals: Scalar | None = None
    not_: Scalar | None = Field(None, alias="not")
    in_: list[Scalar] | None = Field(None, alias="in")
    not_in: list[Scalar] | None = None
    exists: bool | None = None
    contains: str | None = None
    starts_with: str | None = None
    gt: float | None = None
    gte: float | None = None
    lt: float | None = None
    lte: float | None = None

    @model_validator(mode="after")
    def _one_test(self) -> Condition:
        if not self.model_fields_set:
            raise ValueError("needs a test: " + ", ".join(CONDITION_TESTS))
        return self


CONDITION_TESTS: tuple[str, ...] = ("equals", "not", "in", "not_in", "exists", "contains")
CONDITION_TESTS += ("starts_with", "gt", "gte", "lt", "lte")


def _short_condition(value: Any) -> Any:
    if isinstance(value, list):
        return {"in": value}
    if value is None or isinstance(value, str | int | float | bool):
        return {"equals": value} if value is not None else {"exists": False}
    return value


ConditionRule = Annotated[Condition, BeforeValidator(_short_condition)]
Conditions = dict[Annotated[str, Field(min_length=1)], ConditionRule]


def _split_when(value: Any) -> Any:
    if isinstance(value, str):
        return {"trigger": value}
    if isinstance(value, dict) and "conditions" not in value:
        rest = {k: v for k, v in value.items() if k != "trigger"}
        return {"trigger": value.get("trigger"), "conditions": rest} if rest else value
    return value


class When(_Model):
    """`when: {trigger: ID, field: condition, ...}`: the trigger and conditions on its event."""

    trigger: str = Field(min_length=1)
    conditions: Conditions = {}


def _listify(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


def _duration(value: Any) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        return parse_duration(value)  # ValueError words the problem
    return value


class After(_Model):
    """`after: {wait: 3d, unless: TRIGGER}`: run the steps later, unless the contact sees
    one of the `unless` triggers first."""

    wait: Annotated[float, BeforeValidator(_duration), Field(ge=0)]
    unless: Annotated[list[str], BeforeValidator(_listify)] = []


class Step(_Model):
    """One `do:` entry: `{action_id: inputs}`."""

    action: str
    inputs: Any = None

    @model_validator(mode="before")
    @classmethod
    def _single_key(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"action": value}
        if isinstance(value, dict) and set(value) != {"action", "inputs"}:
            if len(value) != 1:
                raise ValueError(
                    f"a step is one `action: inputs` pair, got keys {sorted(map(str, value))}"
                )
            ((action, inputs),) = value.items()
            return {"action": str(action), "inputs": inputs}
        return value


class Recipe(_Model):
    """One automation: when a trigger fires (and its conditions hold), run the steps."""

    name: str

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not re.fullmatch(NAME_PATTERN, value):
            raise ValueError(
                f"{value!r} is not a recipe name: use lower-case letters, digits, - and _ "
                "(at most 40), e.g. new-lead-onboarding"
            )
        return value

    description: str = ""
    enabled: bool = True
    when: Annotated[When, BeforeValidator(_split_when)]
    if_: Conditions = Field({}, alias="if")
    do: list[Step] = Field(min_length=1)
    after: After | None = None
    source: str | None = Field(None, alias="_source", exclude=True)

    @property
    def trigger(self) -> str:
        """The trigger id this recipe listens to."""
        return self.when.trigger

    @property
    def conditions(self) -> dict[str, Condition]:
        """Every condition, `when:` and `if:` together."""
        return {**self.when.conditions, **self.if_}
