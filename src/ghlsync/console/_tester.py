"""The mapping tester: the GHL calls one DripJobs event would cause, nothing sent.

The same steps as `ghlsync preview`: the configured mapping maps the payload, and the flows
the worker runs plan the calls against a throwaway store (what a first delivery would do).
Sample payloads come from the demo's event stream, so every configured event has one.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path
from typing import Any

from ghlsync._clock import SYSTEM_CLOCK
from ghlsync._json import UnsafeJSON, load_json
from ghlsync.mapping import AppConfig, Mapper, MappingError, UnknownEventError

__all__ = ["run_tester", "sample_payloads"]

_PLACEHOLDER_LOCATION = "<location id>"
_PLACEHOLDER_CALENDAR = "<calendar id>"


def sample_payloads(config: AppConfig) -> dict[str, str]:
    """One example body (pretty JSON) per configured event name."""
    from ghlsync.demo._stream import build_stream

    events, _ = build_stream(3, malformed=False)
    samples: dict[str, str] = {}
    for event in events:
        if event.event in config.events and isinstance(event.body, dict):
            samples.setdefault(event.event, json.dumps(event.body, indent=2))
    for name, rule in config.events.items():
        # No example of this event in the stream: one of the same kind of record will do.
        kin = (other for other, r in config.events.items() if r.entity == rule.entity)
        samples.setdefault(name, next((samples[o] for o in kin if o in samples), "{}"))
    return dict(sorted(samples.items()))


def run_tester(config: AppConfig, event: str, text: str) -> dict[str, Any]:
    """`{event, calls, not_mapped, problems}` for one payload; problems instead of calls when
    the payload is not JSON or cannot be mapped."""
    try:
        body = load_json(text.encode("utf-8"))
    except UnsafeJSON as exc:
        return _problem(event, [f"The payload is not valid JSON: {exc}"])
    if not isinstance(body, dict):
        return _problem(event, ["The payload must be a JSON object ({...})."])
    if isinstance(body.get("payload"), dict):
        event = event or str(body.get("event") or "")
        body = body["payload"]
    mapper = Mapper(config)
    try:
        mapped = mapper.map(event, body)
    except UnknownEventError as exc:
        return _problem(event, [str(exc)])
    except MappingError as exc:
        problems = [str(p) for p in getattr(exc, "problems", [exc])]
        return {**_problem(event, problems), "not_mapped": _unmapped(mapper, event, body)}
    try:
        calls = _plan(config, mapped)
    except Exception as exc:  # a flow's own refusal (e.g. a task whose contact is unknown)
        return _problem(event, [f"{type(exc).__name__}: {exc}"])
    return {
        "event": event,
        "calls": calls,
        "not_mapped": mapper.unmapped(event, body),
        "problems": [],
    }


def _unmapped(mapper: Mapper, event: str, body: dict[str, Any]) -> list[str]:
    """The fields no rule reads; none when the payload is too broken to tell."""
    try:
        return mapper.unmapped(event, body)
    except MappingError:
        return []


def _problem(event: str, problems: list[str]) -> dict[str, Any]:
    return {"event": event, "calls": [], "not_mapped": [], "problems": problems}


def _plan(config: AppConfig, mapped: Any) -> list[dict[str, Any]]:
    from ghlsync.engine.flows.to_ghl._dispatch import plan
    from ghlsync.engine.flows.to_ghl._model import FlowContext
    from ghlsync.store import create_engine, migrate

    location = config.ghl.location_id or _PLACEHOLDER_LOCATION
    calendar = config.ghl.calendar_id or _PLACEHOLDER_CALENDAR
    with tempfile.TemporaryDirectory(prefix="ghlsync-console-") as tmp:
        engine = create_engine(f"sqlite:///{Path(tmp) / 'tester.db'}")
        try:
            migrate(engine)
            ctx = FlowContext(engine, None, location, calendar, config, SYSTEM_CLOCK)
            planned = asyncio.run(plan(ctx, mapped))
        finally:
            engine.dispose()
    return [_call(call.as_dict()) for call in planned]


def _call(call: dict[str, Any]) -> dict[str, Any]:
    query = "&".join(f"{k}={v}" for k, v in call.get("params", {}).items())
    path = f"{call['path']}?{query}" if query else call["path"]
    body = json.dumps(call["body"], indent=2, ensure_ascii=False) if "body" in call else None
    return {
        "method": call["method"],
        "path": path,
        "purpose": call.get("purpose", ""),
        "body": body,
    }
