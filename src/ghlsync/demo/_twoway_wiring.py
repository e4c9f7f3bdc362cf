"""Wiring the two-way loop on loopback: GHL sandbox ⇄ ghlsync ⇄ DripJobs emulator.

- ghlsync's config gets the write-back secret and one Catch Hook URL per action, all on the
  emulator (`{sandbox}/dripjobs/hooks/catch/<action>`), and the sandbox's webhook key.
- The GHL sandbox sends its signed webhooks to ghlsync's `/hooks/ghl`.
- The emulator fires DripJobs triggers at ghlsync's `/hooks/dripjobs/<event>` (Bearer).
"""

from __future__ import annotations

from ghlsync.mapping import AppConfig
from ghlsync.mapping._writeback import WRITEBACK_ACTIONS, WritebackSettings
from ghlsync.sandbox import SandboxServer
from ghlsync.sandbox.dripjobs import DEFAULT_WRITEBACK_SECRET, DripJobsState


def catch_hook_url(sandbox_url: str, action: str) -> str:
    """The emulator's Catch Hook for `action`."""
    return f"{sandbox_url}/dripjobs/hooks/catch/{action}"


def two_way_config(
    config: AppConfig, sandbox: SandboxServer, *, timeout: float | None = None
) -> AppConfig:
    """`config` with write-backs aimed at the emulator and GHL webhooks verifiable.

    `timeout` (seconds per write-back POST) lowers the preset's, so a held answer (the
    emulator's "timeout" fault) is given up on and retried quickly.
    """
    actions = {name: {"url": catch_hook_url(sandbox.url, name)} for name in WRITEBACK_ACTIONS}
    settings = WritebackSettings.model_validate(
        {"secret": DEFAULT_WRITEBACK_SECRET, "actions": actions}
    )
    update: dict[str, object] = {"secret": settings.secret, "actions": settings.actions}
    if timeout is not None:
        update["timeout"] = min(config.writeback.timeout, timeout)
    writeback = config.writeback.model_copy(update=update)
    public_key = sandbox.app.state.webhooks.public_key_pem()
    ghl = config.ghl.model_copy(update={"webhook_public_key": public_key})
    return config.model_copy(update={"writeback": writeback, "ghl": ghl})


def wire_two_way(sandbox: SandboxServer, receiver_url: str, secret: str) -> DripJobsState:
    """Point the sandbox's webhooks and the emulator's triggers at ghlsync's receiver."""
    with sandbox.state.lock:
        sandbox.state.webhook_url = f"{receiver_url}/hooks/ghl"
    dripjobs = sandbox.dripjobs
    if dripjobs is None:
        raise ValueError("the sandbox serves no DripJobs emulator")
    with dripjobs.lock:
        dripjobs.settings.ghlsync_url = receiver_url
        dripjobs.settings.secret = secret
        dripjobs.settings.fire_retry_seconds = 0.05  # Zapier waits minutes; the demo cannot
    return dripjobs
