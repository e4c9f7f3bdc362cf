"""`_json._check_tree`: the quick walk refuses exactly what the walk naming the path refuses,
with the same message (it only decides whether that walk is needed)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ghlsync._json import UnsafeJSON, _check_tree, _explain, load_json

_TEXT = st.text(st.sampled_from(["a", "é", " ", "\x00", "\ud800", "\udfff", "\u2028"]), max_size=4)
_LEAVES = st.none() | st.booleans() | st.integers() | st.floats() | _TEXT
_VALUES = st.recursive(
    _LEAVES,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3),
    max_leaves=12,
)


def _outcome(check: Any, value: Any, depth: int) -> str | None:
    try:
        check(value, depth)
    except UnsafeJSON as exc:
        return str(exc)
    return None


@given(value=_VALUES, depth=st.integers(0, 4))
def test_same_refusal_as_the_walk_that_names_the_path(value: Any, depth: int) -> None:
    assert _outcome(_check_tree, value, depth) == _outcome(_explain, value, depth)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"a": "x\\u0000"}', "the value at $.a holds U+0000"),
        (b'{"a\\ud800": 1}', "a key in $ holds a lone UTF-16 surrogate"),
        (b'{"a": [1, 2, 1e400]}', "the number at $.a[2] is out of range"),
        (b'{"a": {"b": {"c": []}}}', "nested more than 3 levels deep"),
    ],
)
def test_each_rule_still_refuses_with_its_path(body: bytes, message: str) -> None:
    with pytest.raises(UnsafeJSON, match=re.escape(message)):
        load_json(body, max_depth=3)


def test_a_clean_payload_passes() -> None:
    body = b'{"customer_id": "p1", "tags": ["a", "b"], "n": 1.5, "ok": true, "x": null}'
    assert load_json(body) == {
        "customer_id": "p1",
        "tags": ["a", "b"],
        "n": 1.5,
        "ok": True,
        "x": None,
    }
