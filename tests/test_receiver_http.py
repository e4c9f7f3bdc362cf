"""The DripJobs receiver over real HTTP on loopback, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import select
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx2
import pytest
import sqlalchemy as sa

from ghlsync._clock import FakeClock
from ghlsync._secret import Secret
from ghlsync.dripjobs import sign
from ghlsync.mapping import AppConfig
from ghlsync.server import create_app, serve_in_thread
from ghlsync.server.guard._settings import ConnectionLimits, HttpParser, uvicorn_settings
from ghlsync.store import create_engine, migrate
from ghlsync.store._tables_engine import dead_letters, inbox, work_items
from tests._db import fresh_postgres_database
from tests._hardening_server_kit import PARSERS

SECRET = "zap-secret-0123456789"
WHSEC = "whsec_" + base64.b64encode(b"s" * 32).decode()
LOCATION = "loc_test"
MAX_BODY = 4096
BEARER = {"Authorization": f"Bearer {SECRET}"}


def make_config(secret: str | None = SECRET, location: str | None = LOCATION) -> AppConfig:
    base = AppConfig.default()
    return base.model_copy(
        update={
            "dripjobs": base.dripjobs.model_copy(
                update={"secret": Secret(secret) if secret else None, "max_body_bytes": MAX_BODY}
            ),
            "ghl": base.ghl.model_copy(update={"location_id": location}),
        }
    )


@dataclass
class Receiver:
    """A running receiver: its base URL, an HTTP client, and the store behind it."""

    url: str
    http: httpx2.Client
    engine: sa.Engine

    def post(
        self, event: str, body: dict[str, Any] | None = None, **kwargs: Any
    ) -> httpx2.Response:
        if body is not None:
            kwargs["json"] = body
        kwargs.setdefault("headers", BEARER)
        return self.http.post(f"{self.url}/hooks/dripjobs/{event}", **kwargs)

    def rows(self, table: sa.Table, **where: Any) -> list[sa.Row[Any]]:
        query = sa.select(table).where(*(table.c[k] == v for k, v in where.items()))
        with self.engine.connect() as conn:
            return list(conn.execute(query))


def running(
    database_url: str, config: AppConfig, *, parser: HttpParser | None = None, **app_options: Any
) -> Iterator[Receiver]:
    engine = create_engine(database_url)
    migrate(engine)
    try:
        app = create_app(engine=engine, config=config, **app_options)
        # The connection guard `ghlsync serve` runs (deadlines, caps, lingering on a refusal)
        guarded = uvicorn_settings(ConnectionLimits(), parser=parser)
        with serve_in_thread(app, **guarded) as url, httpx2.Client(timeout=10) as http:
            yield Receiver(url, http, engine)
    finally:
        engine.dispose()


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Receiver]:
    """One receiver per store for the whole module (creating databases is the slow part)."""
    if request.param == "sqlite":
        urls: Iterator[str] = iter([f"sqlite:///{tmp_path_factory.mktemp('rx') / 'ghlsync.db'}"])
    else:
        urls = fresh_postgres_database()
    for url in urls:
        yield from running(url, make_config())


@pytest.fixture
def receiver(served: Receiver) -> Receiver:
    """The module's receiver with an empty store."""
    with served.engine.begin() as conn:
        for table in (inbox, work_items, dead_letters):
            conn.execute(sa.delete(table))
    return served


CUSTOMER = {"customer_id": "C-1", "first_name": "Ava", "email": "ava@example.com"}


def test_json_delivery_is_committed_before_202(receiver: Receiver) -> None:
    response = receiver.post("customer.created", CUSTOMER | {"delivery_id": "d-1"})
    assert response.status_code == 202
    assert response.json() == {"status": "accepted", "delivery_id": "d-1"}
    # Read right after the answer, on another connection: both rows must be committed.
    [row] = receiver.rows(inbox, delivery_key="id:d-1")
    assert (row.event, row.entity_type, row.source_id) == ("customer.created", "contact", "C-1")
    assert row.location_id == LOCATION
    assert row.connection_id == "default"
    [work] = receiver.rows(work_items, source_id="C-1")
    assert work.id == row.work_id
    assert work.status == "pending"
    assert json.loads(work.payload)["first_name"] == "Ava"


def as_json(body: dict[str, str]) -> bytes:
    return json.dumps(body).encode()


def as_form(body: dict[str, str]) -> bytes:
    return urlencode(body).encode()


ENCODE = {
    "json": (as_json, "application/json"),
    "form": (as_form, "application/x-www-form-urlencoded"),
}


@pytest.mark.parametrize("encoding", ["json", "form"])
@pytest.mark.parametrize("name", ["First Name", "firstName", "first_name"])
def test_field_spellings_land_as_first_name(receiver: Receiver, name: str, encoding: str) -> None:
    encode, content_type = ENCODE[encoding]
    delivery = f"{encoding}-{name}"
    body = {"Customer ID": "C-2", name: "Ava", "Delivery ID": delivery}
    response = receiver.post(
        "customer.updated", content=encode(body), headers=BEARER | {"Content-Type": content_type}
    )
    assert response.status_code == 202, response.text
    [row] = receiver.rows(inbox, delivery_key=f"id:{delivery}")
    assert json.loads(row.payload) == {
        "customer_id": "C-2",
        "first_name": "Ava",
        "delivery_id": delivery,
    }


def test_duplicate_delivery_is_200_and_stored_once(receiver: Receiver) -> None:
    body = CUSTOMER | {"delivery_id": "dup-1"}
    assert receiver.post("customer.updated", body).status_code == 202
    again = receiver.post("customer.updated", body)
    assert again.status_code == 200
    assert again.json() == {"status": "duplicate"}
    assert len(receiver.rows(inbox, delivery_key="id:dup-1")) == 1
    [work] = receiver.rows(work_items, source_id="C-1")
    assert work.generation == 1


def test_without_delivery_id_the_same_body_is_a_duplicate(receiver: Receiver) -> None:
    first = receiver.post("customer.updated", CUSTOMER)
    assert first.status_code == 202
    assert first.json()["delivery_id"].startswith("sha256:")
    assert receiver.post("customer.updated", CUSTOMER).status_code == 200
    assert len(receiver.rows(inbox, source_id="C-1")) == 1


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "missing_credentials"),
        ({"Authorization": "Bearer not-the-secret"}, "bad_credentials"),
    ],
)
def test_bad_bearer_is_401_and_stores_nothing(
    receiver: Receiver, headers: dict[str, str], code: str
) -> None:
    response = receiver.post("customer.created", CUSTOMER, headers=headers)
    assert response.status_code == 401
    assert response.json()["error"] == code
    assert response.json()["message"]
    assert receiver.rows(inbox) == []


def signed(
    body: bytes, *, secret: str = SECRET, ts: int | None = None, wid: str = "msg_1"
) -> dict[str, str]:
    stamp = int(time.time()) if ts is None else ts
    return {
        "webhook-id": wid,
        "webhook-timestamp": str(stamp),
        "webhook-signature": sign(secret, wid, stamp, body),
        "Content-Type": "application/json",
    }


def test_standard_webhooks_signature_is_accepted_and_dedupes_on_webhook_id(
    receiver: Receiver,
) -> None:
    body = json.dumps(CUSTOMER).encode()
    response = receiver.post("customer.created", content=body, headers=signed(body, wid="msg_9"))
    assert response.status_code == 202, response.text
    assert response.json()["delivery_id"] == "msg_9"
    # A retry re-signs with a new timestamp but keeps its webhook-id.
    retry = receiver.post("customer.created", content=body, headers=signed(body, wid="msg_9"))
    assert retry.status_code == 200
    assert len(receiver.rows(inbox, delivery_key="id:msg_9")) == 1


@pytest.mark.parametrize(
    ("tamper", "code"),
    [
        ("body", "bad_signature"),
        ("stale", "stale_timestamp"),
        ("secret", "bad_signature"),
    ],
)
def test_bad_standard_webhooks_signature_is_401(receiver: Receiver, tamper: str, code: str) -> None:
    body = json.dumps(CUSTOMER).encode()
    headers = signed(
        body,
        ts=int(time.time()) - 3600 if tamper == "stale" else None,
        secret="another-secret" if tamper == "secret" else SECRET,
    )
    sent = body.replace(b"Ava", b"Eve") if tamper == "body" else body
    response = receiver.post("customer.created", content=sent, headers=headers)
    assert response.status_code == 401
    assert response.json()["error"] == code
    assert receiver.rows(inbox) == []


def test_malformed_json_is_400_saying_why(receiver: Receiver) -> None:
    response = receiver.post(
        "customer.created",
        content=b'{"customer_id": ',
        headers=BEARER | {"Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["error"] == "malformed_body"
    assert "not valid JSON" in response.json()["message"]


def test_unsupported_content_type_is_400(receiver: Receiver) -> None:
    response = receiver.post(
        "customer.created", content=b"hello", headers=BEARER | {"Content-Type": "text/plain"}
    )
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_media_type"


def test_unknown_event_is_404(receiver: Receiver) -> None:
    response = receiver.post("customer.exploded", CUSTOMER)
    assert response.status_code == 404
    assert response.json()["error"] == "unknown_event"
    assert "customer.created" in response.json()["message"]  # it lists the known events


def test_missing_id_field_is_400_naming_it(receiver: Receiver) -> None:
    response = receiver.post("task.created", {"task_title": "Call back", "customer_id": "C-1"})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_field"
    assert response.json()["message"].startswith("task_id:")


def test_unreadable_timestamp_is_400_naming_it(receiver: Receiver) -> None:
    response = receiver.post("customer.updated", CUSTOMER | {"updated_at": "last tuesday"})
    assert response.status_code == 400
    assert response.json()["message"].startswith("updated_at:")


def test_source_timestamp_is_stored_for_ordering(receiver: Receiver) -> None:
    body = CUSTOMER | {"Updated At": "2026-11-27T15:04:05Z"}
    assert receiver.post("customer.updated", body).status_code == 202
    [row] = receiver.rows(inbox, source_id="C-1")
    assert row.source_updated_at == pytest.approx(1_795_791_845.0)


def test_oversized_body_with_content_length_is_413(receiver: Receiver) -> None:
    big = CUSTOMER | {"note": "x" * MAX_BODY}
    response = receiver.post("customer.created", big)
    assert response.status_code == 413
    assert response.json()["error"] == "body_too_large"
    assert response.headers["connection"] == "close"
    assert receiver.rows(inbox) == []


def test_oversized_chunked_body_is_413(receiver: Receiver) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"customer_id": "C-1", "note": "'
        for _ in range(MAX_BODY // 512 + 2):
            yield b"x" * 512
        yield b'"}'

    response = receiver.post(
        "customer.created", content=chunks(), headers=BEARER | {"Content-Type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    assert response.status_code == 413
    assert receiver.rows(inbox) == []


def test_body_at_the_limit_is_accepted(receiver: Receiver) -> None:
    body = json.dumps(CUSTOMER | {"pad": ""}).encode()
    padded = body[:-2] + b"x" * (MAX_BODY - len(body)) + body[-2:]
    assert len(padded) == MAX_BODY
    response = receiver.post(
        "customer.created", content=padded, headers=BEARER | {"Content-Type": "application/json"}
    )
    assert response.status_code == 202


def test_named_connection_route(receiver: Receiver) -> None:
    ok = receiver.http.post(
        f"{receiver.url}/hooks/dripjobs/default/customer.created", json=CUSTOMER, headers=BEARER
    )
    assert ok.status_code == 202
    missing = receiver.http.post(
        f"{receiver.url}/hooks/dripjobs/elsewhere/customer.created", json=CUSTOMER, headers=BEARER
    )
    assert missing.status_code == 401  # answered like a wrong secret: ids stay unknown
    assert missing.json()["error"] == "bad_credentials"


def test_healthz_reports_store_and_queue(receiver: Receiver) -> None:
    assert receiver.post("customer.created", CUSTOMER).status_code == 202
    response = receiver.http.get(f"{receiver.url}/healthz")
    assert response.status_code == 200
    report = response.json()
    assert report["status"] == "ok"
    assert report["database"]["ok"] is True
    assert report["queue"]["pending"] == 1
    assert report["dead_letters"] == 0


def counts(receiver: Receiver) -> dict[tuple[str, str], float]:
    """The deliveries counter from GET /metrics, by (outcome, reason)."""
    found: dict[tuple[str, str], float] = {}
    text = receiver.http.get(f"{receiver.url}/metrics").text
    for line in text.splitlines():
        if line.startswith("ghlsync_dripjobs_deliveries_total{"):
            labels, value = line.split("} ")
            parts = dict(p.split("=") for p in labels.split("{")[1].split(","))
            found[(parts["outcome"].strip('"'), parts["reason"].strip('"'))] = float(value)
    return found


def test_metrics_count_outcomes(receiver: Receiver) -> None:
    before = counts(receiver)
    receiver.post("customer.created", CUSTOMER | {"delivery_id": "m-1"})
    receiver.post("customer.created", CUSTOMER | {"delivery_id": "m-1"})
    receiver.post("customer.created", CUSTOMER, headers={"Authorization": "Bearer nope"})
    after = counts(receiver)
    for key in [("accepted", ""), ("duplicate", ""), ("rejected", "bad_credentials")]:
        assert after[key] - before.get(key, 0.0) == 1.0, key


@pytest.mark.parametrize(
    ("config", "words"),
    [
        (make_config(secret=None), "secret"),
        (make_config(location=None), "location"),
    ],
)
def test_unconfigured_receiver_is_503_saying_what_to_set(
    sqlite_url: str, config: AppConfig, words: str
) -> None:
    for receiver in running(sqlite_url, config):
        response = receiver.post("customer.created", CUSTOMER)
        assert response.status_code == 503
        assert words in response.json()["message"]


def test_whsec_secret_works_for_bearer_and_signature(sqlite_url: str) -> None:
    for receiver in running(sqlite_url, make_config(secret=WHSEC)):
        body = json.dumps(CUSTOMER).encode()
        assert (
            receiver.post(
                "customer.created", content=body, headers=signed(body, secret=WHSEC)
            ).status_code
            == 202
        )
        bearer = {"Authorization": f"Bearer {WHSEC}"}
        assert receiver.post("customer.updated", CUSTOMER, headers=bearer).status_code == 202


def test_store_failure_is_503_and_nothing_claims_success(sqlite_url: str) -> None:
    for receiver in running(sqlite_url, make_config()):
        with receiver.engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE inbox"))
        response = receiver.post("customer.created", CUSTOMER)
        assert response.status_code == 503
        assert response.json()["error"] == "store_unavailable"
        assert counts(receiver)[("rejected", "store_unavailable")] == 1.0


@dataclass
class Heartbeat:
    last_heartbeat: float | None


@pytest.mark.parametrize(
    ("beat", "status", "alive"),
    [(-5.0, 200, True), (-120.0, 503, False), (None, 503, False)],
)
def test_healthz_follows_the_worker_heartbeat(
    sqlite_url: str, beat: float | None, status: int, alive: bool
) -> None:
    clock = FakeClock()
    heartbeat = Heartbeat(None if beat is None else clock.now() + beat)
    for receiver in running(sqlite_url, make_config(), clock=clock, worker_state=heartbeat):
        response = receiver.http.get(f"{receiver.url}/healthz")
        assert response.status_code == status
        assert response.json()["worker"]["alive"] is alive


def test_healthz_is_503_when_the_store_is_unreachable(sqlite_url: str) -> None:
    for receiver in running(sqlite_url, make_config()):
        with receiver.engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE work_items"))
        response = receiver.http.get(f"{receiver.url}/healthz")
        assert response.status_code == 503
        assert response.json()["database"]["ok"] is False


async def test_concurrent_deliveries_each_get_their_own_answer(receiver: Receiver) -> None:
    # 120 deliveries at once: 40 entities x 3 updates, plus a replay of each first delivery.
    bodies = [
        {"customer_id": f"K-{n % 40}", "first_name": f"V{n}", "delivery_id": f"k-{n}"}
        for n in range(120)
    ]
    async with httpx2.AsyncClient(base_url=receiver.url, headers=BEARER, timeout=30) as http:
        answers = await asyncio.gather(
            *(http.post("/hooks/dripjobs/customer.updated", json=b) for b in bodies),
        )
        replays = await asyncio.gather(
            *(http.post("/hooks/dripjobs/customer.updated", json=b) for b in bodies[:40]),
        )
    assert [a.status_code for a in answers] == [202] * 120
    assert [r.status_code for r in replays] == [200] * 40
    assert len(receiver.rows(inbox)) == 120
    works = receiver.rows(work_items)
    assert len(works) == 40
    assert sorted(w.generation for w in works) == [3] * 40


@pytest.fixture(params=PARSERS)
def receiver_over_each_parser(
    request: pytest.FixtureRequest, sqlite_url: str
) -> Iterator[Receiver]:
    """A receiver on SQLite over each HTTP parser the connection guard supports."""
    yield from running(sqlite_url, make_config(), parser=request.param)


def test_a_refused_body_still_arriving_does_not_reset_the_413(
    receiver_over_each_parser: Receiver,
) -> None:
    """The rest of a body we refused unread may arrive after the answer; the answer must
    still reach the client (closing at once made the kernel reset the connection)."""
    receiver = receiver_over_each_parser
    host, port = receiver.url.removeprefix("http://").split(":")
    head = (
        f"POST /hooks/dripjobs/customer.created HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: Bearer {SECRET}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {MAX_BODY * 4}\r\n\r\n"
    ).encode()
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head + b"{" + b" " * 100)
        ready, _, _ = select.select([sock], [], [], 10)  # the 413 has arrived, unread
        assert ready
        with contextlib.suppress(OSError):  # the rest of the body, after the answer
            sock.sendall(b" " * (MAX_BODY * 4 - 101))
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert b'"body_too_large"' in answer
