"""Is a valid config also one that syncs? What `ghlsync validate` warns about, with the fix.

A file can be well-formed and still do nothing: no DripJobs secret (every delivery to
`/hooks/dripjobs/<event>` is refused), no GHL token (nothing can be sent), no key to check
GHL's signed INSTALL webhooks while a marketplace app is configured. These are warnings, not
errors: an agency set-up legitimately leaves `ghl.token` out (each location has its own
token, `docs/locations.md`), and `init` writes the empty preset on purpose.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from ghlsync.mapping._config import AppConfig

__all__ = ["readiness_warnings"]


def readiness_warnings(config: AppConfig, env: Mapping[str, str] | None = None) -> list[str]:
    """One line per reason `serve` would not sync with `config`: the key, what happens, the
    fix. `env` (default: the process environment) tells whether a GHL app is configured."""
    env = os.environ if env is None else env
    return [*_dripjobs(config), *_ghl_token(config), *_webhook_key(config, env)]


def _dripjobs(config: AppConfig) -> list[str]:
    secret = config.dripjobs.secret
    if secret is not None and secret.reveal():
        return []
    return [
        "dripjobs.secret: not set, so POST /hooks/dripjobs/<event> refuses every delivery "
        "(503 not_configured). Fix: set dripjobs.secret (or GHLSYNC_DRIPJOBS_SECRET) to a "
        "random value of 16+ characters, e.g. from `python3 -c 'import secrets; "
        "print(secrets.token_urlsafe(32))'`, and send it from each Zap as "
        "`Authorization: Bearer <secret>` (locations added with `ghlsync locations add` have "
        "their own URLs and secrets)"
    ]


def _ghl_token(config: AppConfig) -> list[str]:
    ghl = config.ghl
    if ghl.location_id and ghl.token is not None:
        return []
    missing = " and ".join(
        key
        for key, value in (("ghl.location_id", ghl.location_id), ("ghl.token", ghl.token))
        if not value
    )
    return [
        f"{missing}: not set, so no GHL location has a token and `ghlsync serve` cannot sync. "
        "Fix: set ghl.location_id and ghl.token (or GHLSYNC_GHL_LOCATION_ID and "
        "GHLSYNC_GHL_TOKEN) to the sub-account and its Private Integration token, or store "
        "tokens per location (`ghlsync locations add LOCATION --token ...`, `ghlsync auth "
        "login`); ignore this warning when you did"
    ]


def _webhook_key(config: AppConfig, env: Mapping[str, str]) -> list[str]:
    app = config.ghl.app_id or env.get("GHLSYNC_GHL_CLIENT_ID")
    if not app or config.ghl.webhook_public_key:
        return []
    return [
        "ghl.webhook_public_key: not set while a GHL app is configured (ghl.app_id or "
        "GHLSYNC_GHL_CLIENT_ID), so POST /hooks/ghl refuses INSTALL and UNINSTALL signed with "
        "x-ghl-signature (401 bad_signature). Fix: paste the app's Ed25519 webhook public key "
        "(PEM, base64 or hex; the sandbox's is at GET /_sandbox/webhook-public-key) as "
        "ghl.webhook_public_key"
    ]
