"""Reading `ghlsync.yaml`: find it, parse it, apply environment overrides, validate it.

Every problem becomes one line naming the file, the key, the bad value and what is allowed
(`_messages.py` words pydantic's errors)."""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import pydantic
import yaml

from ghlsync.mapping._checks import check
from ghlsync.mapping._config import AppConfig
from ghlsync.mapping._environments import apply_environment, chosen_environment
from ghlsync.mapping._errors import ConfigError, show
from ghlsync.mapping._messages import describe_all, key_path
from ghlsync.mapping._recipe_files import with_recipe_files
from ghlsync.mapping._writeback import WRITEBACK_ACTIONS

PRESET_NAME = "<embedded preset>"
DEFAULT_FILE = "ghlsync.yaml"

ENV_OVERRIDES: dict[str, tuple[str, ...]] = {
    "GHLSYNC_DATABASE_URL": ("database_url",),
    "GHLSYNC_GHL_BASE_URL": ("ghl", "base_url"),
    "GHLSYNC_GHL_LOCATION_ID": ("ghl", "location_id"),
    "GHLSYNC_GHL_TOKEN": ("ghl", "token"),
    "GHLSYNC_GHL_CALENDAR_ID": ("ghl", "calendar_id"),
    "GHLSYNC_DRIPJOBS_SECRET": ("dripjobs", "secret"),
    "GHLSYNC_GHL_APP_ID": ("ghl", "app_id"),
    "GHLSYNC_GHL_API_VERSION": ("ghl", "api_version"),
    "GHLSYNC_ADMIN_TOKEN": ("server", "admin_token"),
    "GHLSYNC_WRITEBACK_SECRET": ("writeback", "secret"),
    **{
        f"GHLSYNC_WRITEBACK_URL_{action.upper()}": ("writeback", "actions", action, "url")
        for action in WRITEBACK_ACTIONS
    },
}
"""Environment variables that override keys of the file (an empty value is ignored)."""


def preset_text() -> str:
    """The commented preset YAML shipped inside the package."""
    return resources.files("ghlsync.mapping").joinpath("preset.yaml").read_text("utf-8")


@functools.cache
def load_preset() -> AppConfig:
    """The embedded preset, validated once (an invalid preset is a bug, so it raises)."""
    return validate(parse_yaml(preset_text(), PRESET_NAME), PRESET_NAME)


def load_config(
    path: str | Path | None = None, *, environ: Mapping[str, str] | None = None
) -> AppConfig:
    """Load the config: `path`, else `$GHLSYNC_CONFIG`, else `./ghlsync.yaml` if present, else
    the embedded preset; then merge the chosen environment (`--env`, `$GHLSYNC_ENV`, the
    file's `environment:`) and apply the `GHLSYNC_*` overrides. Raises `ConfigError`."""
    env = os.environ if environ is None else environ
    name = config_source(path, environ=env)
    preset = parse_yaml(preset_text(), PRESET_NAME)
    if name == PRESET_NAME:
        raw = preset
    else:
        raw = _over_preset(parse_yaml(_read(Path(name), name), name), preset)
        raw = with_recipe_files(raw, Path(name))
    raw = apply_environment(raw, chosen_environment(raw, env), name)
    return validate(apply_env(raw, env), name)


# Top-level mapping sections a file may leave out to keep the preset's; one it does give
# replaces the preset's section as a whole.
_PRESET_SECTIONS = ("events", "fields", "tags", "writeback")
# Likewise inside `writeback:`: a file that only sets the secret and URLs keeps the preset's
# field rules, owners and triggers.
_PRESET_WRITEBACK = ("fields", "triggers", "default_owner")


def _over_preset(raw: Mapping[str, Any], preset: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(raw)
    for section in _PRESET_SECTIONS:
        if section not in merged and section in preset:
            merged[section] = preset[section]
    ours, theirs = merged.get("writeback"), preset.get("writeback")
    if isinstance(ours, dict) and isinstance(theirs, dict):
        merged["writeback"] = {
            **{k: theirs[k] for k in _PRESET_WRITEBACK if k in theirs},
            **ours,
        }
    return merged


def config_source(
    path: str | Path | None = None, *, environ: Mapping[str, str] | None = None
) -> str:
    """The file `load_config` would read, or `<embedded preset>`."""
    env = os.environ if environ is None else environ
    chosen = path if path is not None else env.get("GHLSYNC_CONFIG") or None
    if chosen is None and Path(DEFAULT_FILE).is_file():
        chosen = DEFAULT_FILE
    return PRESET_NAME if chosen is None else str(chosen)


_SANDBOX_KEYS = {
    "location_id": "loc_sandbox",
    "token": "sandbox-token",
    "calendar_id": "cal_sandbox",
    "app_id": "sandbox",  # the app the sandbox's INSTALL/UNINSTALL webhooks are for
}


def render_preset(sandbox_url: str | None = None) -> str:
    """The commented preset; with `sandbox_url`, its `ghl:` section points at the sandbox."""
    text = preset_text()
    if sandbox_url is None:
        return text
    values = {"base_url": sandbox_url.rstrip("/"), **_SANDBOX_KEYS}
    for key, value in values.items():
        # Only the first match: the `ghl:` section comes before any other key of these names.
        pattern = re.compile(rf"^  {key}:.*$", re.MULTILINE)
        text = pattern.sub(f"  {key}: {value}".replace("\\", "\\\\"), text, count=1)
    return text


def _read(path: Path, name: str) -> str:
    try:
        return path.read_text("utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{name}: file not found"]) from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError([f"{name}: cannot be read ({error})"]) from None


def parse_yaml(text: str, name: str) -> dict[str, Any]:
    """The YAML document as a mapping; syntax errors name the line and column."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error)
        raise ConfigError([f"{name}{where}: invalid YAML: {problem}"]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        allowed = ", ".join(AppConfig.model_fields)
        raise ConfigError([f"{name}: expected a mapping of keys ({allowed}), got {show(data)}"])
    return data


def apply_env(raw: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    """A copy of `raw` with the `GHLSYNC_*` overrides set."""
    result = dict(raw)
    for variable, path in ENV_OVERRIDES.items():
        value = env.get(variable)
        if not value:
            continue
        _set_path(result, path, value)
    return result


def _set_path(raw: dict[str, Any], path: tuple[str, ...], value: str) -> None:
    """Set `raw[path]` (copying the mappings on the way), unless a non-mapping is in the way
    (validation then reports that key as it is)."""
    if len(path) == 1:
        raw[path[0]] = value
        return
    inner = raw.get(path[0]) or {}
    if isinstance(inner, dict):
        inner = dict(inner)
        _set_path(inner, path[1:], value)
        raw[path[0]] = inner


def validate(raw: Mapping[str, Any], name: str) -> AppConfig:
    """Validate a parsed config; every problem is reported, each on its own line."""
    try:
        config = AppConfig.model_validate(raw)
    except pydantic.ValidationError as error:
        raise ConfigError(describe_all(name, error.errors())) from None
    problems = check(config)
    if problems:
        raise ConfigError([f"{name}: {key_path(loc)}: {show(v)} {why}" for loc, v, why in problems])
    return config
