"""Recipe config: what is accepted, and errors that name the file, key, value and what fits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ghlsync.engine.flows.recipes import ACTIONS, TRIGGERS, recipe_book
from ghlsync.engine.flows.recipes._dates import parse_duration, parse_relative
from ghlsync.engine.flows.recipes._model import Condition
from ghlsync.engine.flows.recipes._values import render, unmet
from ghlsync.mapping import AppConfig, ConfigError, load_config
from tests._recipes_kit import FOLLOW_UP, ONBOARDING, with_recipes


def _problems(*recipes: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        recipe_book(with_recipes(*recipes))
    return caught.value.problems


def test_the_shipped_recipes_are_valid_and_off() -> None:
    book = recipe_book(AppConfig.default())
    names = [r.name for r in book.recipes]
    assert names == [
        "new-lead-onboarding",
        "estimate-follow-up",
        "appointment-reminder",
        "won-deal-handoff",
        "review-request",
    ]
    assert book.enabled == ()
    for recipe in book.recipes:
        assert recipe.description
        assert recipe.trigger in TRIGGERS or not TRIGGERS
        assert all(step.action in ACTIONS for step in recipe.do)


def test_a_valid_recipe_reads_its_short_forms() -> None:
    [onboarding, follow_up] = recipe_book(with_recipes(ONBOARDING, FOLLOW_UP)).recipes
    assert onboarding.do[2].inputs == ["new-lead"]
    assert follow_up.after is not None
    assert follow_up.after.wait == 3 * 86400
    assert follow_up.after.unless == ["dripjobs.proposal.accepted"]
    assert follow_up.conditions["task_title"].equals == "Send estimate"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"when": {"trigger": "dripjobs.lead.create"}},
            "ghlsync.yaml: recipes[0].when.trigger: 'dripjobs.lead.create' is not a trigger; "
            "did you mean 'dripjobs.lead.created'",
        ),
        (
            {"do": [{"create_tsk": {"title": "x"}}]},
            "ghlsync.yaml: recipes[0].do[0]: 'create_tsk' is not an action; did you mean "
            "'create_task'",
        ),
        (
            {"do": [{"create_task": {"title": "x", "due": "+1d", "dew": 1}}]},
            "ghlsync.yaml: recipes[0].do[0].create_task.dew: unknown input; did you mean 'due'?",
        ),
        (
            {"do": [{"create_task": {"title": "x"}}]},
            "ghlsync.yaml: recipes[0].do[0].create_task.due: is required",
        ),
        (
            {"do": [{"create_task": {"title": "x", "due": "+1x"}}]},
            "ghlsync.yaml: recipes[0].do[0].create_task.due: '+1x' is not a relative date",
        ),
        (
            {"after": {"wait": "soon"}},
            "ghlsync.yaml: recipes[0].after.wait: 'soon' is not a duration",
        ),
        (
            {"after": {"wait": "1d", "unless": "dripjobs.proposal.acepted"}},
            "ghlsync.yaml: recipes[0].after.unless[0]: 'dripjobs.proposal.acepted' is not a "
            "trigger; did you mean 'dripjobs.proposal.accepted'",
        ),
        (
            {"if": {"lead_source": {"inn": ["Web"]}}},
            "ghlsync.yaml: recipes[0].if.lead_source.inn: unknown key; did you mean 'in'?",
        ),
        ({"iff": {}}, "ghlsync.yaml: recipes[0].iff: unknown key; did you mean 'if'?"),
        ({"name": "New Lead"}, "ghlsync.yaml: recipes[0].name: 'New Lead' is not a recipe name"),
        ({"do": [{"a": 1, "b": 2}]}, "ghlsync.yaml: recipes[0].do[0]: a step is one"),
        ({"do": []}, "ghlsync.yaml: recipes[0].do: [] is invalid"),
    ],
)
def test_errors_name_the_key_the_value_and_what_is_allowed(
    change: dict[str, Any], expected: str
) -> None:
    problems = _problems({**ONBOARDING, **change})
    assert any(p.startswith(expected) for p in problems), problems


def test_duplicate_names_are_refused() -> None:
    assert _problems(ONBOARDING, ONBOARDING) == [
        "ghlsync.yaml: recipes[1].name: 'new-lead-onboarding' is used twice"
    ]


def test_recipes_folder_next_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "ghlsync.yaml").write_text("recipes: []\n")
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "sales.yaml").write_text(
        "- name: tag-leads\n"
        "  when: {trigger: dripjobs.lead.created}\n"
        "  do: [{add_tags: [lead]}]\n"
        "- name: bad\n"
        "  when: {trigger: dripjobs.lead.created}\n"
        "  do: [{add_tag: [lead]}]\n"
    )
    config = load_config(tmp_path / "ghlsync.yaml")
    with pytest.raises(ConfigError) as caught:
        recipe_book(config)
    [problem] = caught.value.problems
    assert problem.startswith(
        "recipes/sales.yaml: [1].do[0]: 'add_tag' is not an action; did you mean 'add_tags'"
    )


@pytest.mark.parametrize(
    ("condition", "value", "holds"),
    [
        ({"equals": "Website"}, " website ", True),
        ({"equals": "Website"}, "Angi", False),
        ({"in": ["Website", "Angi"]}, "angi", True),
        ({"not_in": ["Yelp"]}, "Angi", True),
        ({"not": "Yelp"}, "Yelp", False),
        ({"exists": True}, "", False),
        ({"exists": False}, None, True),
        ({"contains": "roof"}, "New Roof job", True),
        ({"starts_with": "est"}, "Estimate", True),
        ({"gte": 5000}, "$5,000", True),
        ({"lt": 100}, "250", False),
        ({"gt": 1}, "not a number", False),
    ],
)
def test_conditions(condition: dict[str, Any], value: Any, holds: bool) -> None:
    rule = Condition.model_validate(condition)
    assert (unmet({"field": rule}, {"field": value}) is None) is holds


def test_templates_and_dates() -> None:
    assert render("Call {first_name} ({Lead Source})", {"first_name": "Ann"}) == "Call Ann ()"
    assert parse_duration("1d 12h") == 129600
    assert parse_duration("3 days") == 259200
    from zoneinfo import ZoneInfo

    zone = ZoneInfo("America/New_York")
    base = 1_700_000_000.0  # 2023-11-14 17:13:20 in New York
    assert parse_relative("+0d +5m").resolve(base, {}, zone).isoformat() == (
        "2023-11-14T17:18:20-05:00"
    )
    assert parse_relative("+1d 09:00").resolve(base, {}, zone).isoformat() == (
        "2023-11-15T09:00:00-05:00"
    )
    fields = {"appointment_start": "2026-03-09T14:00:00-04:00"}  # the day after DST starts
    assert parse_relative("{appointment_start} -1d").resolve(base, fields, zone).isoformat() == (
        "2026-03-08T14:00:00-04:00"
    )
