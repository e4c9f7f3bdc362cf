"""The bare durable receiver issue 13 measures ghlsync's ingest against.

Raw ASGI on uvicorn, nothing else: per request it reads the body, parses it as JSON once,
inserts one row into SQLite (WAL, `synchronous=NORMAL`, the pragmas ghlsync's store uses) and
commits, then answers 202. No authentication, no validation beyond the parse, no dedupe logic
beyond a unique key, no queue: the floor a durable webhook receiver in Python can reach.

    .venv/bin/python bench/ingest_reference.py --db /tmp/ref.db --port 8099 [--http h11]

`--http` picks uvicorn's HTTP parser (default: uvicorn's own choice, httptools when it is
installed); `bench_ingest.py` runs it with the parser `ghlsync serve` uses, so the ratio
compares the receivers, not the parsers.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import uvicorn

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_HEADERS = [(b"content-type", b"application/json")]


def build_app(path: str) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    db.execute(
        "CREATE TABLE IF NOT EXISTS inbox (id INTEGER PRIMARY KEY, delivery_key TEXT UNIQUE,"
        " event TEXT, payload TEXT, received_at REAL DEFAULT (unixepoch('subsec')))"
    )

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # lifespan: nothing to do
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        try:
            payload = json.loads(body)
        except ValueError:
            await _answer(send, 400, b'{"error":"invalid_json"}')
            return
        event = scope["path"].rsplit("/", 1)[-1]
        db.execute("BEGIN")
        db.execute(
            "INSERT INTO inbox (delivery_key, event, payload) VALUES (?, ?, ?)"
            " ON CONFLICT DO NOTHING",
            (str(payload.get("delivery_id")), event, body.decode()),
        )
        db.execute("COMMIT")
        await _answer(send, 202, b'{"status":"accepted"}')

    return app


async def _answer(send: Send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": _HEADERS})
    await send({"type": "http.response.body", "body": body})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True)
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument("--http", choices=["auto", "httptools", "h11"], default="auto")
    args = parser.parse_args()
    uvicorn.run(
        build_app(args.db),
        host="127.0.0.1",
        port=args.port,
        http=args.http,
        log_level="warning",
        access_log=False,
        lifespan="off",
    )


if __name__ == "__main__":
    main()
