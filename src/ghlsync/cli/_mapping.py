"""`ghlsync init` and `ghlsync validate`: write the preset, check a config."""

from __future__ import annotations

import re
import secrets
from pathlib import Path
from typing import Annotated

import typer

from ghlsync._files import write_private_text
from ghlsync.mapping import AppConfig, ConfigError, config_source, load_config, preset_text
from ghlsync.mapping._environments import (
    SANDBOX_DEFAULT_URL,
    SANDBOX_GHL_KEYS,
    environments_text,
)


def init(
    sandbox: Annotated[
        str | None,
        typer.Option("--sandbox", metavar="URL", help="Point ghl: at a running `ghlsync sandbox`."),
    ] = None,
    path: Annotated[Path, typer.Option("--path", help="Where to write the file.")] = Path(
        "ghlsync.yaml"
    ),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented ghlsync.yaml with the DripJobs preset and two environments, sandbox
    and production (the default: production; with --sandbox URL, the sandbox there)."""
    if path.exists() and not force:
        typer.echo(f"{path} already exists; use --force to overwrite it.", err=True)
        raise typer.Exit(1)
    text = _with_environments(preset_text(), sandbox)
    try:  # 0600: the file will hold the GHL token and the DripJobs secret.
        write_private_text(path, text)
    except OSError as exc:
        typer.echo(
            f"ghlsync init: cannot write {path} ({exc.strerror}); create its folder or "
            "choose another --path",
            err=True,
        )
        raise typer.Exit(1) from None
    where = f" for the sandbox at {sandbox}" if sandbox else ""
    typer.echo(
        f"Wrote {path}{where}. Check it with: ghlsync validate --config {path}; before going "
        f"live: ghlsync check --env production --config {path}"
    )


def _with_environments(text: str, sandbox: str | None) -> str:
    """The preset with a sandbox and a production environment; with `--sandbox URL`, the
    sandbox one is the default and works as written: a generated DripJobs secret and, when the
    sandbox answers, its webhook signing key (installs verify)."""
    keys = {"base_url": (sandbox or SANDBOX_DEFAULT_URL).rstrip("/"), **SANDBOX_GHL_KEYS}
    if sandbox:
        text = set_key(text, "dripjobs", "secret", secrets.token_urlsafe(32))
        key = _sandbox_webhook_key(sandbox)
        if key is None:
            typer.echo(
                f"warning: the sandbox at {sandbox} did not give its webhook key; start it "
                "(`ghlsync sandbox`) and run init again, or set "
                "environments.sandbox.ghl.webhook_public_key to "
                f"{sandbox.rstrip('/')}/_sandbox/webhook-public-key",
                err=True,
            )
        else:
            keys["webhook_public_key"] = key
    return text + environments_text(keys, "sandbox" if sandbox else "production")


def _sandbox_webhook_key(url: str) -> str | None:
    """The sandbox's Ed25519 key as one line of base64 (raw 32 bytes), or None."""
    import base64

    import httpx2
    from cryptography.hazmat.primitives import serialization

    from ghlsync.ghl._webhooks import load_ed25519_public_key

    try:
        answer = httpx2.get(url.rstrip("/") + "/_sandbox/webhook-public-key", timeout=5.0)
        answer.raise_for_status()
        key = load_ed25519_public_key(answer.text)
    except (httpx2.HTTPError, ValueError):
        return None
    if key is None:
        return None
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def set_key(text: str, section: str, key: str, value: str) -> str:
    """`text` with `section.key` set to `value` (its comment kept), added when missing."""
    lines = text.splitlines(keepends=True)
    start = lines.index(f"{section}:\n")
    end = next(
        (i for i in range(start + 1, len(lines)) if lines[i][:1] not in (" ", "#", "\n")),
        len(lines),
    )
    pattern = re.compile(rf"^  {re.escape(key)}:[^#\n]*(#.*)?$")
    for index in range(start + 1, end):
        found = pattern.match(lines[index].rstrip("\n"))
        if found is not None:
            comment = f"   {found.group(1)}" if found.group(1) else ""
            lines[index] = f"  {key}: {value}{comment}\n"
            return "".join(lines)
    while end > start + 1 and not lines[end - 1].strip():
        end -= 1  # after the section's last key, not after the blank line that ends it
    lines.insert(end, f"  {key}: {value}\n")
    return "".join(lines)


def validate(
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", help="The config file (default: $GHLSYNC_CONFIG, else ./ghlsync.yaml)."
        ),
    ] = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="Exit 1 on warnings too (a config that cannot sync).")
    ] = False,
) -> None:
    """Check the config: every problem with its key (exit 1), then warnings about what would
    keep it from syncing (no DripJobs secret, no GHL token, no webhook key), with the fix."""
    from ghlsync.engine.flows.recipes import recipe_book
    from ghlsync.mapping._readiness import readiness_warnings

    try:
        loaded = load_config(config)
        recipes = recipe_book(loaded, config_source(config))  # docs/recipes.md
    except ConfigError as error:
        for problem in error.problems:
            typer.echo(problem, err=True)
        raise typer.Exit(1) from None
    source = config_source(config)
    if loaded.environment is not None:
        source = f"{source} (environment {loaded.environment})"
    warnings = readiness_warnings(loaded)
    for warning in warnings:
        typer.echo(f"WARNING: {source}: {warning}", err=True)
    summary = f"{_summary(loaded)}, {len(recipes.enabled)} of {len(recipes.recipes)} recipes on"
    if not warnings:
        typer.echo(f"OK: {source}: {summary}")
        return
    count = f"{len(warnings)} warning{'s' if len(warnings) > 1 else ''}"
    typer.echo(f"OK: {source}: {summary}; NOT READY to sync: {count} above")
    if strict:
        raise typer.Exit(1)


def _summary(config: AppConfig) -> str:
    fields = config.fields
    rules = len(fields.contact) + len(fields.task) + len(fields.note) + len(fields.appointment)
    return (
        f"{len(config.events)} events, {rules} field rules, {len(config.tags)} tag rules, "
        f"{len(config.custom_fields)} custom fields"
    )


def register(app: typer.Typer) -> None:
    """Add this area's commands to `app`."""
    app.command("init")(init)
    app.command("validate")(validate)
