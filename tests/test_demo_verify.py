"""The demo's verification catches what it must: duplicates, missing or extra objects, stale
fields, wrong answers. Pure functions over the sandbox's JSON state."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from ghlsync.demo import Answer, Expected, verify_answers, verify_dead_letters, verify_state
from ghlsync.demo._stream import ExpectedAppointment, ExpectedContact, ExpectedTask

LOC = "loc_sandbox"


def expected() -> Expected:
    ann = ExpectedContact("C-1", "ann@example.com", "Ann", "Lee", "+15125550101", {"lead"})
    ann.tasks = {
        "T-1": ExpectedTask("Call", completed=True),
        "T-2": ExpectedTask("X", deleted=True),
    }
    ann.notes = {"N-1": "Hello"}
    ann.appointments = {"A-1": ExpectedAppointment("Visit", "2026-12-04T15:00:00+00:00", True)}
    return Expected(contacts={"C-1": ann}, dead_letters=1)


def state() -> dict[str, Any]:
    contact = {
        "id": "g1",
        "email": "Ann@Example.com",
        "firstName": "Ann",
        "lastName": "Lee",
        "phone": "+15125550101",
        "tags": ["lead"],
    }
    return {
        "locations": {
            LOC: {
                "contacts": [contact],
                "tasks": [{"id": "t1", "contactId": "g1", "title": "Call", "completed": True}],
                "notes": [{"id": "n1", "contactId": "g1", "body": "Hello"}],
                "appointments": [
                    {
                        "id": "a1",
                        "contactId": "g1",
                        "title": "Visit",
                        "startTime": "2026-12-04T10:00:00-05:00",  # the same instant
                        "appointmentStatus": "cancelled",
                    }
                ],
            }
        }
    }


def test_a_matching_state_has_no_problems() -> None:
    assert verify_state(state(), expected(), LOC) == []


def _changed(path: tuple[str, int], **fields: Any) -> dict[str, Any]:
    s = copy.deepcopy(state())
    s["locations"][LOC][path[0]][path[1]].update(fields)
    return s


def _added(kind: str, record: dict[str, Any]) -> dict[str, Any]:
    s = copy.deepcopy(state())
    s["locations"][LOC][kind].append(record)
    return s


@pytest.mark.parametrize(
    ("broken", "problem"),
    [
        (_added("contacts", {"id": "g2", "email": "ann@example.com"}), "2 contacts with"),
        (_added("contacts", {"id": "g3", "email": "bob@example.com"}), "unexpected contact bob"),
        (_changed(("contacts", 0), lastName="Stale"), "last name is 'Stale'"),
        (_changed(("contacts", 0), phone=None), "phone is None"),
        (_changed(("contacts", 0), tags=[]), "tags are []"),
        (_changed(("tasks", 0), completed=False), "missing task ('Call', True)"),
        (_added("tasks", {"id": "t2", "contactId": "g1", "title": "X"}), "unexpected task"),
        (_changed(("notes", 0), body="Old"), "missing note 'Hello'"),
        (_changed(("appointments", 0), appointmentStatus="new"), "missing appointment"),
        (_added("notes", {"id": "n9", "contactId": "gone", "body": "?"}), "belongs to no"),
    ],
)
def test_each_difference_is_reported(broken: dict[str, Any], problem: str) -> None:
    problems = verify_state(broken, expected(), LOC)
    assert any(problem in line for line in problems), problems


def test_answers_and_dead_letters_are_checked() -> None:
    answers = [Answer(0, "lead.created", 202, 202, ""), Answer(1, "x", 202, 404, "{}")]
    assert verify_answers(answers, 2) == ["event #1 x: answered 202, expected 404: {}"]
    assert verify_answers(answers[:1], 2) == ["2 events sent but 1 answered"]
    assert verify_dead_letters(1, expected()) == []
    assert verify_dead_letters(0, expected()) == ["0 dead letters, expected 1"]
