"""Fuzz: whatever a sender posts, the receiver answers 4xx or 2xx, the worker keeps running,
and every accepted delivery ends synced or dead-lettered (issue 8, item 4).

Bodies are JSON (typed, or with no Content-Type) or forms, of any depth (up to 1,200 levels),
with any unicode (lone surrogates and U+0000 included) and any number (`1e400`, `NaN`, 10**400,
5,000 digits), mixed with the fields and ids the preset maps so that many get through the door
and reach the real worker, which syncs them to the sandbox (GHL's stand-in) over HTTP.

Bounded for `./scripts/test`: GHLSYNC_FUZZ_EXAMPLES examples per store (default 20); nightly
runs set it higher (e.g. 500).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import threading
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

import httpx2
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ghlsync.server import create_app, serve_in_thread
from ghlsync.store import create_engine, migrate
from ghlsync.store._tables_engine import audit_log, dead_letters, inbox, work_items
from tests._db import fresh_postgres_database
from tests._robust_kit import Rig
from tests.test_hardening_input_http import _config as signed_config

EXAMPLES = int(os.environ.get("GHLSYNC_FUZZ_EXAMPLES", "20"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
T = TypeVar("T")

# ------------------------------------------------------------------------- what is sent


@dataclass(frozen=True)
class Raw:
    """JSON text written as it is: numbers Python's json module would not write."""

    text: str


RAW_NUMBERS = ["1e400", "-1e400", "NaN", "Infinity", "1" + "0" * 400, "9" * 5000, "-0", "1E-400"]
ODD_TEXT = ["\ud800", "a\udfffb", "a\x00b", "", " ", "e\u0301", "𝒜𝒷", "ＡＢ", "\u202e", "x" * 300]
DATES = [
    "9999-12-31T23:59:59-12:00",
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:30:00Z",
    "2026-12-01T10:00:00Z",
    "12/01/2026 3:00 PM",
    "1733050000",
    "99999999999999",
    "-62135596800",
]
FIELDS = [
    "customer_id", "first_name", "last_name", "name", "email", "phone", "city", "zip",
    "lead_source", "deal_stage", "updated_at", "task_id", "task_title", "task_due",
    "task_status", "task_assignee", "note_id", "note_body", "appointment_id",
    "appointment_start", "appointment_status", "delivery_id", "tags",
]  # fmt: skip
EVENTS = [
    "customer.created", "customer.updated", "lead.created", "deal.stage_changed",
    "task.created", "task.completed", "task.deleted", "note.created",
    "appointment.scheduled", "appointment.cancelled", "invoice.paid",
]  # fmt: skip

text = st.one_of(st.text(max_size=20), st.sampled_from(ODD_TEXT))
ids = st.sampled_from(["c1", "c2", "t1", "n1", "a1", "C" * 129, "7"])
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    text,
    st.sampled_from(DATES),
    st.sampled_from(["ava@example.com", "not-an-email", "(512) 555-0100", "12"]),
    st.builds(Raw, st.sampled_from(RAW_NUMBERS)),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(text, inner, max_size=3)),
    max_leaves=6,
)


def encode(value: Any) -> str:
    """JSON text; `Raw` verbatim, lone surrogates as `\\ud800` escapes (as a sender's would)."""
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{encode(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(encode(v) for v in value) + "]"
    return json.dumps(value)


def as_form_text(value: Any) -> str:
    """A form field's text: strings as they are (surrogates too), anything else as JSON."""
    if isinstance(value, str):
        return value
    return value.text if isinstance(value, Raw) else "" if value is None else encode(value)


@dataclass(frozen=True)
class Post:
    """One delivery as sent: event, raw body, Content-Type (None: no header)."""

    event: str
    body: bytes
    content_type: str | None


words = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=20)
PLAUSIBLE: dict[str, st.SearchStrategy[Any]] = {
    "customer_id": ids,
    "task_id": ids,
    "note_id": ids,
    "appointment_id": ids,
    "first_name": words,
    "last_name": words,
    "email": st.sampled_from(["ava@example.com", "ben@example.com", "Ben@Example.com", "x@"]),
    "phone": st.sampled_from(["(512) 555-0100", "+44 20 7946 0958", "12", ""]),
    "updated_at": st.sampled_from(DATES[3:6]),
    "task_title": words,
    "task_due": st.sampled_from(DATES),
    "note_body": words,
    "appointment_start": st.sampled_from(DATES),
    "deal_stage": st.sampled_from(["Estimate", "Won", "ＷＯＮ", "‮Won"]),
    "delivery_id": st.one_of(words, st.just("z" * 151 + "a"), st.just("z" * 151 + "b")),
}


@st.composite
def posts(draw: st.DrawFn) -> Post:
    """A delivery that is mostly what a Zap sends, with odd keys, values, depth mixed in."""
    event = draw(st.one_of(st.sampled_from(EVENTS), st.sampled_from(EVENTS), text))
    names = draw(st.lists(st.sampled_from(list(PLAUSIBLE)), max_size=8, unique=True))
    if draw(st.integers(0, 2)):  # a contact needs an email (or phone) to be found in GHL
        names.append("email")
    fields: dict[str, Any] = {name: draw(PLAUSIBLE[name]) for name in names}
    for name in ("customer_id", "task_id", "note_id", "appointment_id"):
        if draw(st.integers(0, 5)):  # most deliveries carry usable ids, so they get in
            fields[name] = draw(ids)
    odd = draw(st.dictionaries(st.one_of(st.sampled_from(FIELDS), text), values, max_size=3))
    if draw(st.booleans()):
        fields.update(odd)
    kind = draw(st.sampled_from(["json", "json", "untyped", "form"]))
    if kind == "form":
        pairs = [(k, as_form_text(v)) for k, v in fields.items()]
        body = urlencode(pairs, encoding="utf-8", errors="surrogatepass").encode()
        return Post(event, body, "application/x-www-form-urlencoded")
    parts = [f"{json.dumps(k)}:{encode(v)}" for k, v in fields.items()]
    depth = draw(st.sampled_from([0, 0, 0, 0, 0, 1, 31, 33, 1_000, 1_200]))
    if depth:
        parts.append('"deep":' + "[" * depth + encode(draw(scalars)) + "]" * depth)
    body = ("{" + ",".join(parts) + "}").encode("utf-8", "surrogatepass")
    return Post(event, body, "application/json" if kind == "json" else None)


# ------------------------------------------------------------------ the pipeline, running


class LoopThread:
    """An event loop in a thread: the worker runs there while hypothesis drives the test."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 180.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=30)
        self.loop.close()


@dataclass
class Fuzzed:
    rig: Rig
    loop: LoopThread
    http: httpx2.Client


def _store_urls(kind: str, tmp: Any) -> Iterator[str]:
    if kind == "sqlite":
        return iter([f"sqlite:///{tmp / 'fuzz.db'}"])
    return fresh_postgres_database()


STORES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(scope="module", params=STORES)
def fuzzed(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fuzzed]:
    """Sandbox, store, receiver and a worker (2 attempts per item), once per store."""
    for url in _store_urls(request.param, tmp_path_factory.mktemp("fuzz")):
        loop = LoopThread()
        rig = Rig(url, max_attempts=2)
        try:
            loop.run(rig.__aenter__())
            loop.run(_started(rig))
            with httpx2.Client(base_url=rig.pipe.receiver_url, timeout=60) as http:
                yield Fuzzed(rig, loop, http)
            loop.run(rig.__aexit__(None, None, None))  # fails if the worker died
        finally:
            loop.close()


async def _started(rig: Rig) -> None:
    rig.start_worker()


def _last_ids(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            t.name: int(
                conn.execute(sa.select(sa.func.coalesce(sa.func.max(t.c.id), 0))).scalar_one()
            )
            for t in (inbox, dead_letters, audit_log)
        }


def _settled_since(engine: sa.Engine, since: dict[str, int]) -> list[str]:
    """Problems with what happened to the deliveries accepted after `since`."""
    problems = []
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(inbox.c.id, work_items.c.id, work_items.c.status)
            .join(work_items, work_items.c.id == inbox.c.work_id)
            .where(inbox.c.id > since["inbox"])
        ).all()
        dead = set(conn.execute(sa.select(dead_letters.c.work_id)).scalars())
        unexpected = (
            conn.execute(
                sa.select(audit_log.c.detail).where(
                    audit_log.c.id > since["audit_log"],
                    audit_log.c.detail.like("%unexpected error%"),
                )
            )
            .scalars()
            .all()
        )
    for inbox_id, work_id, status in rows:
        if status not in ("done", "dead") or (status == "dead" and work_id not in dead):
            problems.append(f"inbox row {inbox_id}: work {work_id} is {status}")
    return problems + [f"a bug, retried as if transient: {d}" for d in unexpected]


@FUZZ
@given(batch=st.lists(posts(), min_size=1, max_size=4))
def test_any_delivery_is_answered_4xx_or_2xx_and_ends_synced_or_dead(
    fuzzed: Fuzzed, batch: list[Post]
) -> None:
    engine = fuzzed.rig.engine
    since = _last_ids(engine)
    for post in batch:
        headers = {"Authorization": f"Bearer {fuzzed.rig.pipe.options.secret}"}
        if post.content_type:
            headers["Content-Type"] = post.content_type
        path = "/hooks/dripjobs/" + quote(post.event, safe="", errors="surrogatepass")
        answer = fuzzed.http.post(path, content=post.body, headers=headers)
        assert answer.status_code < 500, (post, answer.text)
        if answer.status_code >= 400:  # (a path ending in "/" may be redirected: not a refusal)
            assert answer.headers["content-type"].startswith("application/json"), answer.text

    fuzzed.loop.run(fuzzed.rig.drain())  # raises if the worker died

    assert _settled_since(engine, since) == []


# ------------------------------------------------------------------------------ /hooks/ghl


@dataclass
class SignedHooks:
    http: httpx2.Client
    key: Ed25519PrivateKey


@pytest.fixture(scope="module", params=STORES)
def signed_hooks(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SignedHooks]:
    """A receiver whose GHL webhook key the test holds, so every fuzzed body is signed."""
    key = Ed25519PrivateKey.generate()
    for url in _store_urls(request.param, tmp_path_factory.mktemp("ghlfuzz")):
        engine = create_engine(url)
        migrate(engine)
        try:
            app = create_app(engine=engine, config=signed_config(key))
            with serve_in_thread(app) as base, httpx2.Client(base_url=base, timeout=60) as http:
                yield SignedHooks(http, key)
        finally:
            engine.dispose()


@st.composite
def ghl_bodies(draw: st.DrawFn) -> bytes:
    now = datetime.now(UTC).isoformat()
    fields: dict[str, Any] = draw(st.dictionaries(text, values, max_size=4))
    fields["type"] = draw(
        st.one_of(st.sampled_from(["INSTALL", "UNINSTALL", "ContactCreate"]), values)
    )
    fields["timestamp"] = draw(st.one_of(st.just(now), st.sampled_from(DATES), values))
    fields["webhookId"] = draw(st.one_of(st.uuids().map(str), text, st.just("w" * 300), values))
    for name in ("locationId", "companyId", "appId"):
        if draw(st.booleans()):
            fields[name] = draw(st.one_of(st.sampled_from(["loc_1", "app_1"]), values))
    parts = [f"{json.dumps(k)}:{encode(v)}" for k, v in fields.items()]
    depth = draw(st.sampled_from([0, 0, 2, 33, 1_000]))
    if depth:
        parts.append('"deep":' + '{"a":' * depth + "1" + "}" * depth)
    return ("{" + ",".join(parts) + "}").encode("utf-8", "surrogatepass")


@FUZZ
@given(body=ghl_bodies())
def test_any_signed_ghl_webhook_is_answered_below_500(
    signed_hooks: SignedHooks, body: bytes
) -> None:
    signature = base64.b64encode(signed_hooks.key.sign(body)).decode()
    headers = {"x-ghl-signature": signature, "content-type": "application/json"}

    answer = signed_hooks.http.post("/hooks/ghl", content=body, headers=headers)

    assert answer.status_code < 500, (body[:300], answer.text)
    assert answer.headers["content-type"].startswith("application/json"), answer.text
