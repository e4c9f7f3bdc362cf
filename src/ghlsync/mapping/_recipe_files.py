"""`recipes/*.yaml` next to the config file: more `recipes:` entries, one file per theme.

Each file holds a list of recipes (or a mapping with a `recipes:` list). Its entries are
appended to the config's own `recipes:` in file-name order, each tagged with where it came
from (`_source: "recipes/onboarding.yaml#0"`) so an error names that file and position. The
recipes themselves are validated by `ghlsync.engine.flows.recipes` (they need its registries).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ghlsync.mapping._errors import ConfigError, show

FOLDER = "recipes"


def with_recipe_files(raw: dict[str, Any], config_file: Path) -> dict[str, Any]:
    """`raw` with the entries of `<config dir>/recipes/*.yaml` appended to `recipes:`."""
    folder = config_file.parent / FOLDER
    if not folder.is_dir():
        return raw
    extra: list[Any] = []
    for path in sorted(folder.glob("*.y*ml")):
        extra.extend(_entries(path, f"{FOLDER}/{path.name}"))
    if not extra:
        return raw
    own = raw.get("recipes") or []
    if not isinstance(own, list):
        return raw  # validation reports the section's own type
    return {**raw, "recipes": [*own, *extra]}


def _entries(path: Path, name: str) -> list[Any]:
    try:
        data = yaml.safe_load(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError([f"{name}: cannot be read ({error})"]) from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        raise ConfigError([f"{name}{where}: invalid YAML: {error}"]) from None
    if isinstance(data, dict) and set(data) == {"recipes"}:
        data = data["recipes"]
    if data is None:
        return []
    if not isinstance(data, list):
        raise ConfigError([f"{name}: expected a list of recipes, got {show(data)}"])
    return [
        {**entry, "_source": f"{name}#{index}"} if isinstance(entry, dict) else entry
        for index, entry in enumerate(data)
    ]
