"""Named environments in one `ghlsync.yaml`: `environments: {sandbox: {...}, production: {...}}`.

An environment overrides `database_url`, keys of `ghl:` and keys of `writeback:`; everything
else (events, fields, tags, ...) is shared, so the mapping tested against the sandbox is the
mapping that runs in production. Which one a process runs is, first found:

1. `--env NAME` of the command (`selected_environment`, set by the CLI for one call);
2. `$GHLSYNC_ENV`;
3. the file's top-level `environment:` key (what `ghlsync init` writes).

None of them: the base keys as written, and no environment name. The `GHLSYNC_*` variables
still override the chosen environment's keys (a container sets its token that way).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Mapping
from typing import Any

from ghlsync.mapping._errors import ConfigError

__all__ = [
    "ENVIRONMENT_NAME",
    "apply_environment",
    "chosen_environment",
    "selected_environment",
]

ENVIRONMENT_NAME = r"^[a-z][a-z0-9_-]{0,31}$"
_OVERRIDABLE = ("database_url", "ghl", "writeback")

_selected: contextvars.ContextVar[str | None] = contextvars.ContextVar("ghlsync_env", default=None)


@contextlib.contextmanager
def selected_environment(name: str | None) -> Iterator[None]:
    """Within the block, `load_config` runs environment `name` (the CLI's `--env`)."""
    token = _selected.set(name)
    try:
        yield
    finally:
        _selected.reset(token)


def chosen_environment(raw: Mapping[str, Any], env: Mapping[str, str]) -> str | None:
    """The environment to run: `--env`, else `$GHLSYNC_ENV`, else the file's `environment:`."""
    for candidate in (_selected.get(), env.get("GHLSYNC_ENV"), raw.get("environment")):
        if candidate:
            return str(candidate)
    return None


def apply_environment(raw: Mapping[str, Any], name: str | None, source: str) -> dict[str, Any]:
    """`raw` with environment `name` merged over its base keys and `environment: name` set.

    Raises `ConfigError` naming the file and the known environments when `name` is unknown.
    """
    merged = dict(raw)
    if name is None:
        return merged
    known = raw.get("environments") or {}
    if not isinstance(known, dict) or name not in known:
        raise ConfigError([_unknown(name, known, source)])
    overrides = known[name] or {}
    if isinstance(overrides, dict):
        for key in _OVERRIDABLE:
            if key in overrides:
                merged[key] = _deep_merge(merged.get(key), overrides[key])
    merged["environment"] = name
    return merged


def _unknown(name: str, known: object, source: str) -> str:
    names = ", ".join(sorted(known)) if isinstance(known, dict) and known else None
    if names is None:
        return (
            f"{source}: environment {name!r} (from --env or GHLSYNC_ENV) is not defined: the "
            "file has no environments: section; add one (docs/environments.md) or unset "
            "GHLSYNC_ENV"
        )
    return f"{source}: environments: {name!r} is not defined; allowed: {names}"


def _deep_merge(base: Any, override: Any) -> Any:
    """Mappings merge key by key (recursively); anything else, `null` included, replaces."""
    if isinstance(base, dict) and isinstance(override, dict):
        result = dict(base)
        for key, value in override.items():
            result[key] = _deep_merge(base.get(key), value)
        return result
    return override


SANDBOX_DEFAULT_URL = "http://127.0.0.1:8765"
# What a fresh `ghlsync sandbox` serves (docs/sandbox.md), so the sandbox environment that
# `ghlsync init` writes works as it is.
SANDBOX_GHL_KEYS = {
    "location_id": "loc_sandbox",
    "token": "sandbox-token",
    "calendar_id": "cal_sandbox",
    "app_id": "sandbox",
}


def environments_text(sandbox_ghl: Mapping[str, str], default: str) -> str:
    """The commented `environment:` and `environments:` keys `ghlsync init` appends."""
    ghl = "".join(f"      {key}: {value}\n" for key, value in sandbox_ghl.items())
    return (
        "\n# Environments (docs/environments.md): one mapping, run against the sandbox or GHL.\n"
        "# Each overrides database_url and keys of ghl: and writeback:; choose one with\n"
        "# --env NAME or GHLSYNC_ENV, else `environment:` below. `ghlsync check --env NAME`\n"
        "# is the go-live preflight of one.\n"
        f"environment: {default}\n"
        "\n"
        "environments:\n"
        "  sandbox:             # `ghlsync sandbox`: a GHL emulator, no credentials needed\n"
        "    database_url: sqlite:///ghlsync-sandbox.db\n"
        "    ghl:\n"
        f"{ghl}"
        "  production:          # your GHL sub-account: the ghl: section at the top, as written\n"
        "    database_url: sqlite:///ghlsync.db\n"
        "    ghl:\n"
        "      base_url: https://services.leadconnectorhq.com\n"
    )
