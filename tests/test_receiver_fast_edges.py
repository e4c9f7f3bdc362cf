"""The receiver's edges at the ASGI level, on SQLite and PostgreSQL: the exact answer bytes
and headers for a body cut off mid-way, a chunked body over the limit, a repeated header
(the first one counts, as Starlette's `Headers` reads it), a duplicate and a non-ASCII id."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from starlette.types import Message

from ghlsync._secret import Secret
from ghlsync.mapping import AppConfig
from ghlsync.server import create_app
from ghlsync.store import create_engine, migrate
from tests._db import fresh_postgres_database

SECRET = "edge-secret-0123456789"
MAX_BODY = 512
PATH = "/hooks/dripjobs/customer.created"


def _config() -> AppConfig:
    base = AppConfig.default()
    dripjobs = base.dripjobs.model_copy(
        update={"secret": Secret(SECRET), "max_body_bytes": MAX_BODY}
    )
    ghl = base.ghl.model_copy(update={"location_id": "loc_edge"})
    return base.model_copy(update={"dripjobs": dripjobs, "ghl": ghl})


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def engine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[sa.Engine]:
    if request.param == "sqlite":
        urls: Iterator[str] = iter([f"sqlite:///{tmp_path_factory.mktemp('edge') / 'e.db'}"])
    else:
        urls = fresh_postgres_database()
    for url in urls:
        engine = create_engine(url)
        migrate(engine)
        yield engine
        engine.dispose()


def _scope(headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": PATH,
        "raw_path": PATH.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
    }


async def _call(
    app: FastAPI, headers: list[tuple[bytes, bytes]], messages: list[Message]
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    sent: list[Message] = []

    async def receive() -> Message:
        if messages:
            return messages.pop(0)
        await asyncio.sleep(3600)  # nothing more comes
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        sent.append(message)

    await app(_scope(headers), receive, send)
    start, body = sent
    return start["status"], list(start["headers"]), body["body"]


def _run(engine: sa.Engine, *calls: tuple[list[tuple[bytes, bytes]], list[Message]]) -> list[Any]:
    async def main() -> list[Any]:
        app = create_app(engine=engine, config=_config())
        async with app.router.lifespan_context(app):
            return [await _call(app, headers, messages) for headers, messages in calls]

    return asyncio.run(main())


BEARER = (b"authorization", f"Bearer {SECRET}".encode())
JSON = (b"content-type", b"application/json")


def _body(data: bytes, more: bool = False) -> Message:
    return {"type": "http.request", "body": data, "more_body": more}


def _delivery(delivery_id: str, customer: str) -> bytes:
    return json.dumps({"delivery_id": delivery_id, "customer_id": customer}).encode()


def _answer(status: int, content: dict[str, Any], *extra: tuple[bytes, bytes]) -> Any:
    body = json.dumps(content, separators=(",", ":")).encode()
    headers = [(b"content-length", str(len(body)).encode()), JSON, *extra]
    return (status, headers, body)


def test_a_body_cut_off_is_answered_400(engine: sa.Engine) -> None:
    messages = [_body(b'{"customer_id":', True), {"type": "http.disconnect"}]
    [answer] = _run(engine, ([BEARER, JSON], messages))
    message = "the client disconnected mid-body"
    assert answer == _answer(400, {"error": "incomplete_body", "message": message})


def test_a_chunked_body_over_the_limit_is_answered_413_and_closed(engine: sa.Engine) -> None:
    messages = [_body(b"{" + b" " * MAX_BODY, True), _body(b"}")]
    [answer] = _run(engine, ([BEARER, JSON], messages))
    message = f"the body is over the {MAX_BODY}-byte limit"
    close = (b"connection", b"close")
    assert answer == _answer(413, {"error": "body_too_large", "message": message}, close)


def test_the_first_of_a_repeated_header_counts(engine: sa.Engine) -> None:
    wrong = (b"authorization", b"Bearer not-the-secret")
    body = _delivery("edge-first", "E-1")
    good_first, bad_first = _run(
        engine,
        ([BEARER, wrong, JSON], [_body(body)]),
        ([wrong, BEARER, JSON], [_body(body)]),
    )
    assert good_first == _answer(202, {"status": "accepted", "delivery_id": "edge-first"})
    message = "the bearer secret does not match"
    assert bad_first == _answer(401, {"error": "bad_credentials", "message": message})


def test_a_duplicate_and_a_non_ascii_id_answer_as_before(engine: sa.Engine) -> None:
    body = _delivery("édge-ü-\u2603", "E-2")
    first, again = _run(engine, ([BEARER, JSON], [_body(body)]), ([BEARER, JSON], [_body(body)]))
    assert first == _answer(202, {"status": "accepted", "delivery_id": "édge-ü-\u2603"})
    assert again == _answer(200, {"status": "duplicate"})
