"""Which GHL API versions the token accepts, and whether the configured one is among them."""

from __future__ import annotations

from ghlsync.ghl._client import probe_api_versions
from ghlsync.preflight._model import CheckLine, Preflight, failed, passed

__all__ = ["check_api_version"]


async def check_api_version(pf: Preflight) -> list[CheckLine]:
    """One `GET /locations/{id}` per version (docs/api-versions.md)."""
    if pf.client is None or pf.location_id is None:
        return []
    accepted = await probe_api_versions(pf.client, pf.location_id)
    listed = ", ".join(f"{api} {'✓' if ok else '✗'}" for api, ok in accepted.items())
    using = pf.client.api_version(pf.location_id)
    if accepted.get(using):
        return [passed("api version", f"GHL API versions: {listed}; this connection uses {using}")]
    other = next((api for api, ok in accepted.items() if ok), None)
    fix = (
        f"set ghl.api_version: {other} (or GHLSYNC_GHL_API_VERSION={other})"
        if other
        else "GHL accepts neither: fix the token line above first"
    )
    message = f"GHL API versions: {listed}; this connection uses {using}, which GHL refuses"
    return [failed("api version", message, fix)]
