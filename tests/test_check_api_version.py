"""`ghlsync check` says which GHL API versions the token accepts (docs/api-versions.md)."""

from __future__ import annotations

import httpx2

from ghlsync._secret import Secret
from ghlsync.mapping import AppConfig
from ghlsync.preflight import run_checks
from ghlsync.preflight._api_version import check_api_version
from tests._sandbox import InProcessSandbox


def _config(box: InProcessSandbox, api: str) -> AppConfig:
    config = AppConfig.default()
    ghl = config.ghl.model_copy(
        update={
            "base_url": box.url,
            "location_id": box.location_id,
            "token": Secret(box.token),
            "api_version": api,
        }
    )
    return config.model_copy(update={"ghl": ghl})


async def test_both_versions_accepted_by_the_sandbox(sandbox_asgi: InProcessSandbox) -> None:
    config = _config(sandbox_asgi, "v3")
    [line] = await run_checks(
        config, transport=sandbox_asgi.transport(), checks=[check_api_version]
    )
    assert line.ok and line.check == "api version"
    assert line.message == "GHL API versions: v2 ✓, v3 ✓; this connection uses v3"


async def test_a_version_ghl_refuses_fails_with_the_fix(sandbox_asgi: InProcessSandbox) -> None:
    inner = sandbox_asgi.transport()

    async def v2_only(request: httpx2.Request) -> httpx2.Response:
        if request.headers.get("Version") == "v3":  # a GHL that does not take v3 yet
            return httpx2.Response(400, json={"statusCode": 400, "message": "bad Version"})
        return await inner.handle_async_request(request)

    config = _config(sandbox_asgi, "v3")
    [line] = await run_checks(
        config, transport=httpx2.MockTransport(v2_only), checks=[check_api_version]
    )
    assert not line.ok
    assert (
        line.message == "GHL API versions: v2 ✓, v3 ✗; this connection uses v3, which GHL refuses"
    )
    assert line.fix == "set ghl.api_version: v2 (or GHLSYNC_GHL_API_VERSION=v2)"
