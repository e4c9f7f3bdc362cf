"""The mapping tester's "Send to sandbox": the payload really synced, to the sandbox environment.

Shown when `ghlsync.yaml` has an environment named `sandbox` (docs/environments.md). The
payload is mapped with the shared mapping and run through the flows the worker runs, with the
sandbox environment's GHL (`ghl:` keys over the base ones) and a throwaway store: nothing
reaches production GHL, and neither store's id map is touched. The answer is what each entity
did in the sandbox, with its GHL id.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from ghlsync._clock import SYSTEM_CLOCK
from ghlsync._json import UnsafeJSON, load_json
from ghlsync.ghl._errors import GHLError
from ghlsync.mapping import AppConfig, Mapper, MappingError

__all__ = ["SANDBOX", "sandbox_config", "send_to_sandbox"]

SANDBOX = "sandbox"


def sandbox_config(config: AppConfig) -> AppConfig | None:
    """`config` as the sandbox environment runs it (only its `ghl:` matters here), or None
    when there is no sandbox environment with a location and a token."""
    found = config.environments.get(SANDBOX)
    if found is None:
        return None
    if config.environment == SANDBOX:
        ghl = config.ghl  # already merged, GHLSYNC_* overrides included
    else:
        # The keys the environment gives (attributes: a dump would mask the token).
        over = found.ghl
        given = {key: getattr(over, key) for key in over.model_fields_set} if over else {}
        ghl = config.ghl.model_copy(update=given)
    if not ghl.location_id or ghl.token is None:
        return None
    return config.model_copy(update={"ghl": ghl, "environment": SANDBOX})


async def send_to_sandbox(config: AppConfig, event: str, text: str) -> dict[str, Any]:
    """`{event, base_url, outcomes: [{entity, id, action, ghl_id}], problems}`."""
    target = sandbox_config(config)
    if target is None:
        return _problem(event, "", ["No sandbox environment with a location and a token."])
    try:
        body = load_json(text.encode("utf-8"))
    except UnsafeJSON as exc:
        return _problem(event, target.ghl.base_url, [f"The payload is not valid JSON: {exc}"])
    if not isinstance(body, dict):
        return _problem(event, target.ghl.base_url, ["The payload must be a JSON object."])
    if isinstance(body.get("payload"), dict):
        event, body = event or str(body.get("event") or ""), body["payload"]
    try:
        mapped = Mapper(target).map(event, body)
        outcomes = await _sync(target, mapped)
    except (MappingError, GHLError) as exc:
        return _problem(event, target.ghl.base_url, [str(exc)])
    return {"event": event, "base_url": target.ghl.base_url, "outcomes": outcomes, "problems": []}


async def _sync(config: AppConfig, mapped: Any) -> list[dict[str, Any]]:
    from ghlsync.engine.flows.to_ghl._dispatch import sync_event
    from ghlsync.engine.flows.to_ghl._model import FlowContext
    from ghlsync.ghl._client import GHLClient
    from ghlsync.ghl._tokens import StaticTokens
    from ghlsync.store import create_engine, migrate

    ghl = config.ghl
    assert ghl.location_id is not None and ghl.token is not None
    tokens = StaticTokens({ghl.location_id: ghl.token})
    with tempfile.TemporaryDirectory(prefix="ghlsync-tester-") as folder:
        engine = create_engine(f"sqlite:///{Path(folder) / 'tester.db'}")
        try:
            migrate(engine)
            client = GHLClient(
                base_url=ghl.base_url, tokens=tokens, max_attempts=2, api_version=ghl.api_version
            )
            async with client:
                context = FlowContext(
                    engine, client, ghl.location_id, ghl.calendar_id, config, SYSTEM_CLOCK
                )
                done = await sync_event(context, mapped)
        finally:
            engine.dispose()
    return [
        {"entity": o.entity_type, "id": o.source_id, "action": o.action, "ghl_id": o.ghl_id}
        for o in done
    ]


def _problem(event: str, base_url: str, problems: list[str]) -> dict[str, Any]:
    return {"event": event, "base_url": base_url, "outcomes": [], "problems": problems}
