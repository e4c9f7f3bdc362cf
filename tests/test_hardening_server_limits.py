"""Slow and numerous clients cannot take the receiver down (real uvicorn on loopback).

The server runs with the limits `ghlsync serve` applies (`uvicorn_settings`), made small so
each test takes about a second, over each HTTP parser the guard supports (httptools, which
`ghlsync serve` uses, and h11, its fallback).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import time
from collections.abc import Iterator

import httpx2
import pytest
import sqlalchemy as sa
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ghlsync.server.guard._conn import MAX_HEADER_BYTES
from ghlsync.server.guard._settings import (
    ConnectionLimits,
    HttpParser,
    ThrottledLog,
    guarded_protocol,
    http_parser,
    quiet_accept_errors,
    uvicorn_settings,
)
from ghlsync.store import create_engine, migrate
from tests._hardening_server_kit import (
    BEARER,
    PARSERS,
    config,
    connect,
    guarded,
    read_all,
    read_response,
    status_and_json,
)

PARTIAL_HEAD = b"POST /hooks/dripjobs/customer.created HTTP/1.1\r\nHost: x\r\nX-Slow: "
WAIT_SECONDS = 10.0  # generous: the bound under test is 0.5 s


@pytest.fixture(params=PARSERS)
def parser(request: pytest.FixtureRequest) -> HttpParser:
    found: HttpParser = request.param
    return found


@pytest.fixture
def store(sqlite_url: str) -> Iterator[sa.Engine]:
    engine = create_engine(sqlite_url)
    migrate(engine)
    yield engine
    engine.dispose()


def _closed_by_server(sock: socket.socket) -> bool:
    sock.settimeout(WAIT_SECONDS)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    finally:
        sock.close()


def _lines(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if text in r.getMessage()]


def test_partial_headers_are_closed_after_the_bound_while_healthz_answers(
    store: sa.Engine, parser: HttpParser, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "ghlsync.server")
    with guarded(store, config(header_timeout=0.5, max_connections=200), parser=parser) as url:
        slow = [connect(url, PARTIAL_HEAD) for _ in range(60)]
        healthz = httpx2.get(f"{url}/healthz", timeout=WAIT_SECONDS)
        closed = [_closed_by_server(sock) for sock in slow]
        after = httpx2.get(f"{url}/healthz", timeout=WAIT_SECONDS)

    assert healthz.status_code == 200 and after.status_code == 200
    assert all(closed)
    # Sixty closures, one line: the log does not grow with the flood.
    assert len(_lines(caplog, "did not send their headers within 0.5 s")) == 1


def test_a_silent_connection_is_closed_after_the_header_bound(
    store: sa.Engine, parser: HttpParser
) -> None:
    with guarded(store, config(header_timeout=0.5, keep_alive=30), parser=parser) as url:
        assert _closed_by_server(connect(url))


def test_past_max_connections_a_new_one_is_answered_503_and_service_resumes(
    store: sa.Engine, parser: HttpParser
) -> None:
    with guarded(store, config(header_timeout=1.0, max_connections=8), parser=parser) as url:
        held = [connect(url, PARTIAL_HEAD) for _ in range(8)]
        extra = read_all(connect(url, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"))
        freed = [_closed_by_server(sock) for sock in held]
        healthz = httpx2.get(f"{url}/healthz", timeout=WAIT_SECONDS)

    status, body = status_and_json(extra)
    assert (status, body["error"]) == (503, "overloaded")
    assert all(freed)
    assert healthz.status_code == 200


def test_a_body_that_does_not_arrive_is_answered_408_and_closed(
    store: sa.Engine, parser: HttpParser
) -> None:
    head = (
        b"POST /hooks/dripjobs/customer.created HTTP/1.1\r\nHost: x\r\n"
        b"Authorization: " + BEARER["Authorization"].encode() + b"\r\n"
        b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    )
    with guarded(store, config(body_timeout=0.5), parser=parser) as url:
        answer = read_all(connect(url, head + b'{"customer_id"', timeout=WAIT_SECONDS))

    status, body = status_and_json(answer)
    assert (status, body["error"]) == (408, "body_timeout")
    assert "server.body_timeout" in body["message"]
    assert b"connection: close" in answer.lower()


def test_a_body_nobody_reads_cannot_hold_the_connection(
    store: sa.Engine, parser: HttpParser
) -> None:
    # The 404 is sent at once; uvicorn would then wait for the rest of the body forever.
    head = b"POST /nowhere HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nabc"
    with guarded(store, config(body_timeout=0.5, keep_alive=30), parser=parser) as url:
        sock = connect(url, head, timeout=WAIT_SECONDS)
        assert status_and_json(read_response(sock))[0] == 404
        sock.sendall(b"more")  # a trickle resets uvicorn's keep-alive timer, not our bound
        assert _closed_by_server(sock)


def test_invalid_http_is_answered_with_the_json_error_shape(
    store: sa.Engine, parser: HttpParser
) -> None:
    with guarded(store, config(), parser=parser) as url:
        answer = read_all(connect(url, b"NOT HTTP AT ALL\r\n\r\n"))
        oversized = read_all(connect(url, b"GET / HTTP/1.1\r\nX: " + b"a" * 20_000 + b"\r\n\r\n"))

    assert status_and_json(answer)[1]["error"] == "bad_request"
    status, body = status_and_json(oversized)
    assert (status, body["error"]) == (400, "bad_request")


def test_the_throttled_log_folds_repeats_into_one_line_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    throttle = ThrottledLog(interval=60.0, clock=lambda: now[0])
    caplog.set_level(logging.WARNING, "ghlsync.server")
    for _ in range(500):
        throttle.warn("k", "slow clients")
    now[0] = 61.0
    throttle.warn("k", "slow clients")

    assert [r.getMessage() for r in caplog.records] == [
        "slow clients",
        "slow clients (499 more since the last such line)",
    ]


async def test_descriptor_exhaustion_on_accept_is_one_line_without_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    quiet_accept_errors(loop, ThrottledLog())
    try:
        for _ in range(200):  # what asyncio reports for each failed accept()
            loop.call_exception_handler(
                {
                    "message": "socket.accept() out of system resource",
                    "exception": OSError(errno.EMFILE, "Too many open files"),
                }
            )
        loop.call_exception_handler({"message": "something else"})
    finally:
        loop.set_exception_handler(previous)

    accept = _lines(caplog, "cannot accept connections")
    assert len(accept) == 1 and accept[0].exc_info is None
    assert _lines(caplog, "something else")  # other loop errors still reach the default


def test_a_kept_alive_connection_outlives_the_header_and_body_bounds(
    store: sa.Engine, parser: HttpParser
) -> None:
    auth = BEARER["Authorization"].encode()

    def request(customer: bytes) -> bytes:
        body = b'{"customer_id": "' + customer + b'"}'
        return (
            b"POST /hooks/dripjobs/customer.created HTTP/1.1\r\nHost: x\r\n"
            b"Authorization: " + auth + b"\r\nContent-Type: application/json\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )

    limits = config(header_timeout=0.5, body_timeout=0.5, keep_alive=30)
    with guarded(store, limits, parser=parser) as url:
        sock = connect(url, request(b"C-1"), timeout=WAIT_SECONDS)
        first = status_and_json(read_response(sock))
        time.sleep(0.7)  # idle past both bounds: only keep_alive may close it
        sock.sendall(request(b"C-2"))
        second = status_and_json(read_response(sock))
        sock.close()

    assert (first[0], second[0]) == (202, 202)


def _get_healthz(header_value_bytes: int) -> bytes:
    return b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * header_value_bytes + b"\r\n\r\n"


def test_a_head_over_the_limit_is_answered_400_before_it_ends(
    store: sa.Engine, parser: HttpParser
) -> None:
    # No blank line ever comes: only the size bound can answer (the header bound is 30 s).
    unending = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * (MAX_HEADER_BYTES + 100)
    with guarded(store, config(header_timeout=30), parser=parser) as url:
        answer = read_all(connect(url, unending, timeout=WAIT_SECONDS))

    status, body = status_and_json(answer)
    assert (status, body["error"]) == (400, "bad_request")


def test_a_head_under_the_limit_is_served(store: sa.Engine, parser: HttpParser) -> None:
    with guarded(store, config(), parser=parser) as url:
        sock = connect(url, _get_healthz(MAX_HEADER_BYTES - 200), timeout=WAIT_SECONDS)
        status = status_and_json(read_response(sock))[0]
        sock.close()

    assert status == 200


def test_the_head_limit_is_per_request_not_per_connection(
    store: sa.Engine, parser: HttpParser
) -> None:
    # Three heads of 10 KiB on one kept-alive connection, 30 KiB in all, each under 16 KiB;
    # each sent in two parts (the pause makes them two reads), the first ending mid-header.
    head = _get_healthz(10 * 1024)
    with guarded(store, config(), parser=parser) as url:
        sock = connect(url, timeout=WAIT_SECONDS)
        answers = []
        for _ in range(3):
            sock.sendall(head[:9000])
            time.sleep(0.1)
            sock.sendall(head[9000:])
            answers.append(status_and_json(read_response(sock))[0])
        sock.close()

    assert answers == [200, 200, 200]


def test_ghlsync_serve_parses_with_httptools() -> None:
    # httptools is a dependency: the guard must pick it (h11 is the fallback without it).
    protocol = uvicorn_settings(ConnectionLimits())["http"]
    assert http_parser() == "httptools"
    assert issubclass(protocol, HttpToolsProtocol)
    assert issubclass(guarded_protocol(ConnectionLimits(), parser="h11"), H11Protocol)
