"""What `preview` and `recipes test` read: an event file, and a store to plan against (the
configured one read-only, or a throwaway one); neither sends anything."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer

from ghlsync.mapping import AppConfig

__all__ = ["read_event", "store_for"]


def read_event(file: Path, event: str | None) -> tuple[str, dict[str, Any]]:
    """The event name and the payload from a file (flat, or `{"event", "payload"}`)."""
    from ghlsync._json import UnsafeJSON, load_json

    try:  # read as the receiver reads a body: a file it would refuse is refused here too
        body: Any = load_json(file.read_bytes())
    except (OSError, UnsafeJSON) as exc:
        raise typer.BadParameter(
            f"{file}: not a JSON file: {exc}", param_hint="EVENT.json"
        ) from None
    if not isinstance(body, dict):
        raise typer.BadParameter(f"{file}: must hold a JSON object", param_hint="EVENT.json")
    named = body.pop("event", None)
    payload = body.pop("payload") if isinstance(body.get("payload"), dict) else body
    name = event or (str(named) if named else None)
    if not name:
        raise typer.BadParameter(
            f'{file} has no "event" key; name the event with --event', param_hint="--event"
        )
    return name, payload


@contextlib.contextmanager
def store_for(config: AppConfig, use_store: bool) -> Iterator[Any]:
    """The configured store (read as it is) or a migrated throwaway SQLite file."""
    import sqlalchemy as sa

    from ghlsync.cli._engine_common import open_store
    from ghlsync.engine.flows._preview import scratch_store

    if use_store:
        with open_store("preview", config.database_url, write=False) as engine:
            try:
                yield engine
            except sa.exc.SQLAlchemyError as exc:
                typer.echo(
                    f"ghlsync preview: cannot read the store: {exc.__class__.__name__}", err=True
                )
                raise typer.Exit(1) from None
        return
    with scratch_store() as engine:
        yield engine
