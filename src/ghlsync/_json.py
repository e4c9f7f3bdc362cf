"""Reading untrusted JSON: every way a body can break us later is refused up front.

`json.loads` alone accepts things the rest of ghlsync cannot hold or that a sender cannot mean:

- nesting so deep that decoding (or encoding it again in the worker, at another stack depth)
  raises `RecursionError`;
- `NaN`/`Infinity` literals and numbers like `1e400` that become infinite floats;
- integers over Python's digit limit (a `ValueError` that is not a `JSONDecodeError`);
- lone UTF-16 surrogates (`"\\ud800"`): no UTF-8 text can hold them, so storing them fails;
- U+0000, which a PostgreSQL text column refuses.

`load_json` raises `UnsafeJSON` for all of these, so receivers answer 400 instead of 500/503;
`check_text` applies the two text rules to strings that did not come from JSON (form fields).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from typing import Any, Final

__all__ = ["MAX_DEPTH", "UnsafeJSON", "check_text", "load_json"]

MAX_DEPTH: Final = 32
"""Objects and arrays inside each other, at most. A Zap's payload is flat; GHL's two deep."""

_BAD_TEXT = re.compile("[\x00\ud800-\udfff]")


class UnsafeJSON(ValueError):
    """The body is not JSON that ghlsync can store and map; the message says why."""


def load_json(body: bytes | str, *, max_depth: int = MAX_DEPTH) -> Any:
    """The decoded value, or `UnsafeJSON` naming the first problem."""
    try:
        value = _decode(body)
    except RecursionError:
        raise UnsafeJSON(_too_deep(max_depth)) from None
    except UnsafeJSON:
        raise
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UnsafeJSON(f"not valid JSON: {_first_line(exc)}") from None
    except ValueError:  # Python's limit on integer digits (4300), not the JSON grammar
        raise UnsafeJSON("a number has too many digits") from None
    _check_tree(value, max_depth)
    return value


def check_text(text: str, where: str) -> None:
    """Refuse a lone surrogate or U+0000 in `text`; `where` names it ("field 'email'")."""
    found = _BAD_TEXT.search(text)
    if found is None:
        return
    char = found.group()
    what = "U+0000 (NUL)" if char == "\x00" else f"a lone UTF-16 surrogate (\\u{ord(char):04x})"
    raise UnsafeJSON(f"{where} holds {what}, which is not storable text; send valid Unicode")


def _check_tree(root: Any, max_depth: int) -> None:
    """Depth, text and numbers of every value: a quick walk, and only when it finds something
    the walk that names where (building every value's path costs twice the quick walk)."""
    if not _clean(root, max_depth):
        _explain(root, max_depth)


def _clean(root: Any, max_depth: int) -> bool:
    """True when no value breaks a rule `_explain` checks (the same rules, no paths).

    A container's strings (an object's keys too) are searched as one text, and its numbers
    checked where they are met: a delivery is one flat object of strings and numbers, and a
    search per string, each pushed on the stack first, cost as much as decoding the body.
    The rules are about single characters, so joining the texts cannot make or hide one.
    """
    if not isinstance(root, dict | list):
        return _clean_leaf(root)
    search = _BAD_TEXT.search
    stack: list[tuple[dict[str, Any] | list[Any], int]] = [(root, 0)]
    while stack:
        value, depth = stack.pop()
        texts: list[str]
        items: Iterable[Any]
        if isinstance(value, dict):
            texts, items = list(value), value.values()
        else:
            texts, items = [], value
        if depth >= max_depth:
            return False
        for item in items:
            if isinstance(item, str):
                texts.append(item)
            elif isinstance(item, dict | list):
                stack.append((item, depth + 1))
            elif isinstance(item, float) and not math.isfinite(item):
                return False
        if texts and search("".join(texts)) is not None:
            return False
    return True


def _clean_leaf(value: Any) -> bool:
    if isinstance(value, str):
        return _BAD_TEXT.search(value) is None
    return not (isinstance(value, float) and not math.isfinite(value))


def _explain(root: Any, max_depth: int) -> None:
    """Walk without recursion: raise `UnsafeJSON` naming the first problem and where it is."""
    stack: list[tuple[Any, int, str]] = [(root, 0, "$")]
    while stack:
        value, depth, path = stack.pop()
        if isinstance(value, dict | list):
            if depth >= max_depth:
                raise UnsafeJSON(_too_deep(max_depth))
            stack.extend(_children(value, depth + 1, path))
        elif isinstance(value, str):
            check_text(value, f"the value at {path}")
        elif isinstance(value, float) and not math.isfinite(value):
            raise UnsafeJSON(f"the number at {path} is out of range")


def _children(value: dict[Any, Any] | list[Any], depth: int, path: str) -> list[Any]:
    if isinstance(value, list):
        return [(item, depth, f"{path}[{n}]") for n, item in enumerate(value)]
    children = []
    for key, item in value.items():
        check_text(key, f"a key in {path}")
        children.append((item, depth, f"{path}.{key[:40]}"))
    return children


def _refuse_constant(name: str) -> Any:
    raise UnsafeJSON(f"{name} is not a JSON number")


_DECODER: Final = json.JSONDecoder(parse_constant=_refuse_constant)


def _decode(body: bytes | str) -> Any:
    """`json.loads(body, parse_constant=_refuse_constant)` without building a decoder per
    call (`loads` builds one whenever it is given an option): the same steps otherwise."""
    if isinstance(body, str):
        if body.startswith("\ufeff"):
            raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", body, 0)
    else:
        body = body.decode(json.detect_encoding(body), "surrogatepass")
    return _DECODER.decode(body)


def _too_deep(max_depth: int) -> str:
    return f"the JSON is nested more than {max_depth} levels deep"


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else exc.__class__.__name__
