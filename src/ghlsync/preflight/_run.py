"""Run the preflight: every check of `CHECKS`, in order, against one environment's GHL.

`CHECKS` is the one list to extend: a new check is an async function `(Preflight) ->
list[CheckLine]` added where its line should print (e.g. which GHL API version the token
accepts, next to the token line).
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path

import httpx2
import sqlalchemy as sa

from ghlsync._secret import Secret
from ghlsync.ghl._client import GHLClient
from ghlsync.ghl._errors import GHLError
from ghlsync.ghl._tokens import StaticTokens
from ghlsync.mapping import AppConfig
from ghlsync.mapping._readiness import readiness_warnings
from ghlsync.preflight._api_version import check_api_version
from ghlsync.preflight._ghl_checks import (
    check_calendar,
    check_custom_fields,
    check_pipelines,
    check_scopes,
    check_token,
    check_users,
    check_workflows,
)
from ghlsync.preflight._model import Check, CheckLine, Preflight, failed, passed
from ghlsync.preflight._write_checks import (
    check_webhook_key,
    check_write_paths,
    check_writeback_urls,
)

__all__ = ["CHECKS", "Credentials", "run_checks"]


async def check_config(pf: Preflight) -> list[CheckLine]:
    """What `ghlsync validate` warns about, except the GHL token and webhook key (own lines)."""
    where = f"environment {pf.config.environment}" if pf.config.environment else "no environment"
    lines = [passed("config", f"{where}: GHL at {pf.config.ghl.base_url}")]
    for warning in readiness_warnings(pf.config):
        if warning.startswith(("dripjobs.",)):
            key, _, rest = warning.partition(": ")
            reason, _, fix = rest.partition(" Fix: ")
            lines.append(failed("config", f"{key}: {reason.rstrip('.')}", fix or reason))
    return lines


CHECKS: list[Check] = [
    check_config,
    check_token,
    check_api_version,
    check_scopes,
    check_calendar,
    check_custom_fields,
    check_pipelines,
    check_users,
    check_workflows,
    check_webhook_key,
    check_writeback_urls,
    check_write_paths,
]
"""Every check, in the order its lines print."""


class Credentials:
    """Where the token of the checked location comes from: the config, or the store's vault."""

    def __init__(self, token: Secret | None, scopes: str | None = None, kind: str = "config"):
        self.token = token
        self.scopes = scopes
        self.kind = kind

    def __repr__(self) -> str:
        return f"Credentials(kind={self.kind!r}, scopes={self.scopes!r})"


async def run_checks(
    config: AppConfig,
    *,
    location_id: str | None = None,
    credentials: Credentials | None = None,
    transport: httpx2.AsyncBaseTransport | None = None,
    checks: list[Check] | None = None,
) -> list[CheckLine]:
    """Every line of the preflight of `config` (its environment already chosen)."""
    location = location_id or config.ghl.location_id
    credentials = credentials or Credentials(config.ghl.token)
    async with _client(config, location, credentials.token, transport) as client:
        sandbox = await _is_sandbox(config, transport) if client is not None else False
        with _scratch_store() as engine:
            pf = Preflight(config, client, location, credentials.scopes, sandbox, engine)
            lines: list[CheckLine] = []
            for check in checks if checks is not None else CHECKS:
                lines += await _guarded(check, pf)
    return lines


async def _guarded(check: Check, pf: Preflight) -> list[CheckLine]:
    """A check that breaks is one failed line, not the end of the preflight."""
    try:
        return await check(pf)
    except (GHLError, httpx2.HTTPError, OSError) as error:
        name = getattr(check, "__name__", "check").removeprefix("check_").replace("_", " ")
        return [
            failed(
                name, f"could not run: {error}", "fix what the lines above say, then run it again"
            )
        ]


@contextlib.asynccontextmanager
async def _client(
    config: AppConfig,
    location: str | None,
    token: Secret | None,
    transport: httpx2.AsyncBaseTransport | None,
) -> AsyncIterator[GHLClient | None]:
    if location is None or token is None:
        yield None
        return
    # Two attempts, not five: a person waits, and a failure is a line with its fix.
    client = GHLClient(
        base_url=config.ghl.base_url,
        tokens=StaticTokens({location: token}),
        transport=transport,
        max_attempts=2,
        timeout=15.0,
        api_version=config.ghl.api_version,
    )
    async with client:
        yield client


async def _is_sandbox(config: AppConfig, transport: httpx2.AsyncBaseTransport | None) -> bool:
    """True when the GHL under check is a ghlsync sandbox (it answers its admin API)."""
    url = config.ghl.base_url.rstrip("/") + "/_sandbox/counters"
    try:
        async with httpx2.AsyncClient(transport=transport, timeout=5.0) as http:
            answer = await http.get(url)
    except httpx2.HTTPError:
        return False
    return answer.status_code == 200 and _looks_like_counters(answer)


def _looks_like_counters(answer: httpx2.Response) -> bool:
    try:
        body = answer.json()
    except ValueError:
        return False
    return isinstance(body, Mapping)


@contextlib.contextmanager
def _scratch_store() -> Iterator[sa.Engine]:
    """A migrated throwaway SQLite store: the test writes and the dry run record nothing in
    the environment's own store (its id map stays as the real syncs left it)."""
    from ghlsync.store import create_engine, migrate

    with tempfile.TemporaryDirectory(prefix="ghlsync-check-") as folder:
        engine = create_engine(f"sqlite:///{Path(folder) / 'check.db'}")
        try:
            migrate(engine)
            yield engine
        finally:
            engine.dispose()
