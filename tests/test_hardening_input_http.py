"""Malformed input is a 4xx, never a 5xx (issue 8, items 4 and 5): both hook endpoints over
real HTTP on loopback, on SQLite and PostgreSQL (which refuses what SQLite stores: U+0000,
over-long ids), and nothing of a refused delivery is stored."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx2
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ghlsync.mapping import AppConfig
from ghlsync.server import create_app, serve_in_thread
from ghlsync.store import create_engine, migrate
from ghlsync.store._tables import ghl_webhooks_seen
from ghlsync.store._tables_engine import dead_letters, inbox, work_items
from tests._db import fresh_postgres_database
from tests.test_receiver_http import BEARER, make_config

DEEP = 1_000  # what the review sent: deep enough for RecursionError in json.loads


@dataclass
class Served:
    """A receiver with a GHL webhook key of the test's own, and its store."""

    http: httpx2.Client
    engine: sa.Engine
    key: Ed25519PrivateKey

    def dripjobs(
        self, body: bytes, content_type: str = "application/json", event: str = "customer.created"
    ) -> httpx2.Response:
        headers = {**BEARER, "Content-Type": content_type}
        return self.http.post(f"/hooks/dripjobs/{event}", content=body, headers=headers)

    def ghl(self, body: bytes) -> httpx2.Response:
        signature = base64.b64encode(self.key.sign(body)).decode()
        headers = {"x-ghl-signature": signature, "content-type": "application/json"}
        return self.http.post("/hooks/ghl", content=body, headers=headers)

    def count(self, table: sa.Table) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def _config(key: Ed25519PrivateKey) -> AppConfig:
    base = make_config()
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base.model_copy(
        update={
            "dripjobs": base.dripjobs.model_copy(update={"max_body_bytes": 64 * 1024}),
            "ghl": base.ghl.model_copy(update={"webhook_public_key": pem.decode()}),
        }
    )


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def served_once(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    """One receiver per store for the module (creating databases is the slow part)."""
    if request.param == "sqlite":
        urls: Iterator[str] = iter([f"sqlite:///{tmp_path_factory.mktemp('hx') / 'g.db'}"])
    else:
        urls = fresh_postgres_database()
    key = Ed25519PrivateKey.generate()
    for url in urls:
        engine = create_engine(url)
        migrate(engine)
        try:
            app = create_app(engine=engine, config=_config(key))
            with serve_in_thread(app) as base, httpx2.Client(base_url=base, timeout=30) as http:
                yield Served(http, engine, key)
        finally:
            engine.dispose()


@pytest.fixture
def served(served_once: Served) -> Served:
    """The module's receiver with an empty store."""
    with served_once.engine.begin() as conn:
        for table in (inbox, work_items, dead_letters, ghl_webhooks_seen):
            conn.execute(sa.delete(table))
    return served_once


def nested(depth: int, kind: str) -> bytes:
    """`depth` arrays (or objects) inside each other, as the value of a customer's field."""
    opened, closed = (
        (b"[" * depth, b"]" * depth) if kind == "array" else (b'{"a":' * depth, b"1" + b"}" * depth)
    )
    return b'{"customer_id": "C-1", "notes": ' + opened + closed + b"}"


# ------------------------------------------------------------------ /hooks/dripjobs/<event>


DRIPJOBS_REFUSED: dict[str, tuple[bytes, str, str]] = {
    # name: (body, the error code, words the message must hold)
    "array 1000 deep": (nested(DEEP, "array"), "malformed_body", "nested more than 32"),
    "object 1000 deep": (nested(DEEP, "object"), "malformed_body", "nested more than 32"),
    "updated_at after 9999": (
        b'{"customer_id": "C-1", "updated_at": "9999-12-31T23:59:59-12:00"}',
        "invalid_field",
        "updated_at",
    ),
    "updated_at before year 1": (
        b'{"customer_id": "C-1", "updated_at": "0001-01-01T00:00:00+14:00"}',
        "invalid_field",
        "updated_at",
    ),
    "lone surrogate in a value": (
        b'{"customer_id": "C-1", "first_name": "\\ud800"}',
        "malformed_body",
        "surrogate",
    ),
    "lone surrogate in the id": (b'{"customer_id": "\\udfff"}', "malformed_body", "surrogate"),
    "lone surrogate in a key": (
        b'{"customer_id": "C-1", "\\ud800": "x"}',
        "malformed_body",
        "surrogate",
    ),
    "NUL in a value": (b'{"customer_id": "C-1", "city": "a\\u0000b"}', "malformed_body", "NUL"),
    "NaN": (b'{"customer_id": "C-1", "score": NaN}', "malformed_body", "NaN"),
    "1e400": (b'{"customer_id": "C-1", "score": 1e400}', "malformed_body", "out of range"),
    "5000 digits": (
        b'{"customer_id": "C-1", "score": ' + b"7" * 5000 + b"}",
        "malformed_body",
        "too many digits",
    ),
    "an id over 128 characters": (
        json.dumps({"customer_id": "C" * 129}).encode(),
        "invalid_field",
        "too long for an id",
    ),
}


@pytest.mark.parametrize("case", list(DRIPJOBS_REFUSED), ids=list(DRIPJOBS_REFUSED))
def test_malformed_deliveries_are_refused_with_400_and_store_nothing(
    served: Served, case: str
) -> None:
    body, code, words = DRIPJOBS_REFUSED[case]

    answer = served.dripjobs(body)

    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == code
    assert words in answer.json()["message"]
    assert served.count(inbox) == 0 and served.count(work_items) == 0


@pytest.mark.parametrize(
    "body", [b"customer_id=C-1&city=a%00b", b"customer_id=C-1&first+name=%00"], ids=["value", "2"]
)
def test_a_form_field_holding_nul_is_refused(served: Served, body: bytes) -> None:
    answer = served.dripjobs(body, "application/x-www-form-urlencoded")

    assert (answer.status_code, answer.json()["error"]) == (400, "malformed_body")
    assert "NUL" in answer.json()["message"]
    assert served.count(inbox) == 0


def test_nesting_up_to_the_limit_is_accepted(served: Served) -> None:
    """The limit refuses what cannot be meant, not a sender's structured field."""
    answer = served.dripjobs(nested(31, "array"))
    assert answer.status_code == 202, answer.text


# ------------------------------------------------------------------------- delivery ids


def _customer(delivery_id: str, n: int) -> bytes:
    body = {"customer_id": f"C-{n}", "email": f"c{n}@example.com", "delivery_id": delivery_id}
    return json.dumps(body).encode()


def test_long_delivery_ids_sharing_their_first_150_characters_are_two_deliveries(
    served: Served,
) -> None:
    prefix = "zap-run-" + "x" * 150
    first, second = prefix + "-first", prefix + "-second"

    answers = [served.dripjobs(_customer(first, 1)), served.dripjobs(_customer(second, 2))]
    retried = served.dripjobs(_customer(second, 2))

    assert [a.status_code for a in answers] == [202, 202], [a.text for a in answers]
    assert [a.json()["delivery_id"] for a in answers] == [first, second]
    assert (retried.status_code, retried.json()) == (200, {"status": "duplicate"})
    with served.engine.connect() as conn:
        keys = conn.execute(sa.select(inbox.c.delivery_key).order_by(inbox.c.id)).scalars().all()
    assert len(keys) == 2 and keys[0] != keys[1]
    assert all(key.startswith("idsha256:") and len(key) <= 160 for key in keys)


def test_short_delivery_ids_keep_their_plain_key(served: Served) -> None:
    """Keys already stored stay valid: a retry of an old delivery is still a duplicate."""
    assert served.dripjobs(_customer("d" * 150, 1)).status_code == 202
    with served.engine.connect() as conn:
        (key,) = conn.execute(sa.select(inbox.c.delivery_key)).scalars().all()
    assert key == "id:" + "d" * 150


# ------------------------------------------------------------------------------ /hooks/ghl


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _event(**fields: Any) -> bytes:
    return json.dumps(
        {"type": "ContactCreate", "webhookId": "wh-1", "timestamp": _now(), **fields}
    ).encode()


GHL_REFUSED: dict[str, tuple[bytes, int, str]] = {
    "array 1000 deep": (
        b'{"type": "X", "webhookId": "w", "a": ' + b"[" * DEEP + b"]" * DEEP + b"}",
        400,
        "malformed_body",
    ),
    "object 1000 deep": (
        b'{"type": "X", "a": ' + b'{"a":' * DEEP + b"1" + b"}" * DEEP + b"}",
        400,
        "malformed_body",
    ),
    "timestamp 10**400": (
        b'{"type": "X", "webhookId": "w", "timestamp": 1' + b"0" * 400 + b"}",
        401,
        "stale_timestamp",
    ),
    "timestamp 1e400": (
        b'{"type": "X", "webhookId": "w", "timestamp": 1e400}',
        400,
        "malformed_body",
    ),
    "timestamp after 9999": (_event(timestamp="9999-12-31T23:59:59-12:00"), 401, "stale_timestamp"),
    "timestamp before year 1": (
        _event(timestamp="0001-01-01T00:00:00+14:00"),
        401,
        "stale_timestamp",
    ),
    "lone surrogate in webhookId": (
        b'{"type": "X", "webhookId": "\\ud800", "timestamp": "' + _now().encode() + b'"}',
        400,
        "malformed_body",
    ),
    "5000 digits": (b'{"type": "X", "n": ' + b"9" * 5000 + b"}", 400, "malformed_body"),
}


@pytest.mark.parametrize("case", list(GHL_REFUSED), ids=list(GHL_REFUSED))
def test_malformed_signed_ghl_webhooks_are_refused_with_4xx(served: Served, case: str) -> None:
    body, status, code = GHL_REFUSED[case]

    answer = served.ghl(body)

    assert (answer.status_code, answer.json()["error"]) == (status, code), answer.text
    assert served.count(ghl_webhooks_seen) == 0


def test_a_webhook_id_too_long_for_its_column_still_guards_replays(served: Served) -> None:
    body = _event(webhookId="w" * 500)

    first, replay = served.ghl(body), served.ghl(body)

    assert first.status_code < 500, first.text
    assert (replay.status_code, replay.json()["error"]) == (409, "replayed_webhook")
