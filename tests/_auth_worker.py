"""A second OS process for the refresh-contention test: `python -m tests._auth_worker ...`.

Says "ready" with a file, waits for a "go" file (so all processes start together), then runs
N concurrent callers that each take a token from its own TokenVault and call the sandbox with
it. Prints one JSON line per caller: the HTTP status and a hash of the token (never the token).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import httpx2

from ghlsync._secret import Secret
from ghlsync.ghl._crypto import TokenCipher
from ghlsync.ghl._oauth import OAuthApp
from ghlsync.ghl._vault import TokenVault
from ghlsync.store import create_engine


def fingerprint(token: Secret) -> str:
    return hashlib.sha256(token.reveal().encode()).hexdigest()[:16]


async def call_with_vault(vault: TokenVault, base_url: str, key: str) -> tuple[int, str]:
    """Take a token for `key` and GET the location with it (the way the client would)."""
    token = await vault.token(key)
    async with httpx2.AsyncClient(base_url=base_url, timeout=30) as client:
        response = await client.get(
            f"/locations/{key}",
            headers={"Authorization": f"Bearer {token.reveal()}", "Version": "2021-07-28"},
        )
    return response.status_code, fingerprint(token)


def _wait_for(go: Path) -> None:
    deadline = time.monotonic() + 60
    while not go.exists() and time.monotonic() < deadline:
        time.sleep(0.005)


async def _main(database_url: str, base_url: str, key: str, go: Path, callers: int) -> None:
    engine = create_engine(database_url)
    oauth = OAuthApp(
        "sandbox-client", Secret("sandbox-secret"), "http://127.0.0.1/cb", base_url=base_url
    )
    vault = TokenVault(engine, TokenCipher.from_env(), oauth)
    await asyncio.to_thread(vault.status, key)  # connect and warm up before the start signal
    go.with_name(f"ready-{os.getpid()}").touch()
    await asyncio.to_thread(_wait_for, go)
    results = await asyncio.gather(*(call_with_vault(vault, base_url, key) for _ in range(callers)))
    for status, token_hash in results:
        print(json.dumps({"status": status, "token": token_hash}), flush=True)
    engine.dispose()


if __name__ == "__main__":
    url, base, loc, go_file, count = sys.argv[1:6]
    asyncio.run(_main(url, base, loc, Path(go_file), int(count)))
