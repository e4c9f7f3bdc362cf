"""What the receiver says, and to whom (real HTTP on loopback).

- Before authentication a caller learns nothing: an unknown connection is answered exactly as
  a wrong secret is, no location id appears, FastAPI's docs are off, and the detail of
  `/healthz` and `/metrics` is behind `server.admin_token` when one is set.
- Every refusal is `{"error", "message"}`, the framework's 404/405/500 included.
- JSON sent without saying so is read as JSON.
- `/healthz` says `degraded`, and why, when no delivery can be accepted.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from typer.testing import CliRunner

from ghlsync.cli import app as cli
from ghlsync.dripjobs import sign
from ghlsync.engine.locations._directory import LocationDirectory
from ghlsync.engine.locations._rows import Registered, register_location, uninstall_location
from ghlsync.ghl._crypto import TokenCipher
from ghlsync.mapping import AppConfig, ConfigError, load_config
from ghlsync.server import create_app, serve_in_thread
from ghlsync.server._errors import install_json_errors
from ghlsync.store import create_engine, migrate
from tests._hardening_server_kit import ADMIN, BEARER, LOCATION, config

CUSTOMER = {"customer_id": "C-1", "first_name": "Ava"}


@pytest.fixture
def store(sqlite_url: str) -> Iterator[sa.Engine]:
    engine = create_engine(sqlite_url)
    migrate(engine)
    yield engine
    engine.dispose()


@contextmanager
def _client(
    store: sa.Engine, app_config: AppConfig, cipher: TokenCipher
) -> Iterator[httpx2.Client]:
    directory = LocationDirectory(store, app_config, cipher)
    app = create_app(engine=store, config=app_config, locations=directory)
    with serve_in_thread(app) as url, httpx2.Client(base_url=url) as http:
        yield http


@pytest.fixture
def http(store: sa.Engine, loc_cipher: TokenCipher) -> Iterator[httpx2.Client]:
    with _client(store, config(), loc_cipher) as client:
        yield client


@pytest.fixture
def guarded_http(store: sa.Engine, loc_cipher: TokenCipher) -> Iterator[httpx2.Client]:
    """A receiver with `server.admin_token` set."""
    with _client(store, config(admin_token=ADMIN), loc_cipher) as client:
        yield client


@pytest.fixture
def registered(store: sa.Engine, loc_cipher: TokenCipher) -> Registered:
    return register_location(store, loc_cipher, "loc_private", now=time.time())


# -- item 7: less said before authentication ---------------------------------------------------


def _credentials(kind: str, body: bytes) -> dict[str, str]:
    if kind == "none":
        return {}
    if kind == "bearer":
        return {"Authorization": "Bearer not-the-secret-at-all"}
    stamp = int(time.time())
    return {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(stamp),
        "webhook-signature": sign("not-the-secret-at-all", "msg_1", stamp, body),
    }


@pytest.mark.parametrize("kind", ["none", "bearer", "signature"])
def test_an_unknown_connection_is_answered_like_a_known_one_with_a_wrong_secret(
    http: httpx2.Client, registered: Registered, kind: str
) -> None:
    body = b'{"customer_id": "C-1"}'
    headers = {"content-type": "application/json"} | _credentials(kind, body)
    known = http.post(
        f"/hooks/dripjobs/{registered.connection_id}/customer.created",
        content=body,
        headers=headers,
    )
    unknown = http.post(
        "/hooks/dripjobs/dj_doesnotexist/customer.created", content=body, headers=headers
    )

    assert known.status_code == unknown.status_code == 401
    assert known.json() == unknown.json()
    assert "loc_private" not in known.text


def test_a_revoked_connection_names_its_location_only_to_its_owner(
    http: httpx2.Client, store: sa.Engine, registered: Registered
) -> None:
    uninstall_location(store, "loc_private", now=time.time())
    path = f"/hooks/dripjobs/{registered.connection_id}/customer.created"
    assert registered.new_secret is not None
    owner = {"Authorization": f"Bearer {registered.new_secret.reveal()}"}

    stranger = http.post(
        path, json=CUSTOMER, headers={"Authorization": "Bearer wrong-secret-value"}
    )
    known = http.post(path, json=CUSTOMER, headers=owner)

    assert (stranger.status_code, stranger.json()["error"]) == (401, "bad_credentials")
    assert "loc_private" not in stranger.text
    assert (known.status_code, known.json()["error"]) == (401, "connection_revoked")
    assert "loc_private" in known.json()["message"]


def test_refusals_of_the_default_connection_name_no_location(http: httpx2.Client) -> None:
    answers = [
        http.post("/hooks/dripjobs/customer.created", json=CUSTOMER),
        http.post(
            "/hooks/dripjobs/customer.created",
            json=CUSTOMER,
            headers={"Authorization": "Bearer nope"},
        ),
        http.post("/hooks/dripjobs/no.such.event", json=CUSTOMER),
    ]
    assert [a.status_code for a in answers] == [401, 401, 401]
    assert all(LOCATION not in a.text for a in answers)


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"])
def test_the_framework_docs_are_off(http: httpx2.Client, path: str) -> None:
    answer = http.get(path)
    assert (answer.status_code, answer.json()["error"]) == (404, "not_found")


def test_with_an_admin_token_healthz_detail_and_metrics_need_it(
    guarded_http: httpx2.Client,
) -> None:
    admin = {"Authorization": f"Bearer {ADMIN}"}
    bare = guarded_http.get("/healthz")
    wrong = guarded_http.get("/healthz", headers={"Authorization": "Bearer admin-token-0123456788"})
    full = guarded_http.get("/healthz", headers=admin)
    metrics = guarded_http.get("/metrics")
    metrics_ok = guarded_http.get("/metrics", headers=admin)

    assert (bare.status_code, bare.json()) == (200, {"status": "ok"})
    assert wrong.json() == {"status": "ok"}
    assert full.status_code == 200 and "queue" in full.json() and "locations" in full.json()
    assert (metrics.status_code, metrics.json()["error"]) == (401, "admin_token_required")
    assert metrics.headers["www-authenticate"] == "Bearer"
    assert metrics_ok.status_code == 200 and "ghlsync_dripjobs_deliveries" in metrics_ok.text


def test_without_an_admin_token_the_detail_stays_public(http: httpx2.Client) -> None:
    assert "queue" in http.get("/healthz").json()
    assert http.get("/metrics").status_code == 200


@pytest.mark.parametrize("key", ["dripjobs.secret", "server.admin_token"])
def test_a_secret_under_16_characters_is_refused_by_every_loader(tmp_path: Path, key: str) -> None:
    section, name = key.split(".")
    path = tmp_path / "ghlsync.yaml"
    path.write_text(f"{section}:\n  {name}: short-secret1\n")

    with pytest.raises(ConfigError) as refused:
        load_config(path, environ={})
    validated = CliRunner().invoke(cli, ["validate", "--config", str(path)])
    served = CliRunner().invoke(cli, ["serve", "--config", str(path), "--port", "1"])

    expected = f"{key}: is 13 characters; use at least 16"
    assert any(expected in problem for problem in refused.value.problems)
    assert validated.exit_code != 0 and expected in validated.output
    assert served.exit_code != 0 and expected in served.output
    assert "short-secret1" not in validated.output + served.output


def test_a_short_secret_from_the_environment_is_refused_too() -> None:
    with pytest.raises(ConfigError, match=r"dripjobs\.secret: is 5 characters"):
        load_config(None, environ={"GHLSYNC_DRIPJOBS_SECRET": "short"})


# -- item 18: every refusal is JSON --------------------------------------------------------------


def test_a_wrong_method_is_a_json_405_naming_the_allowed_one(http: httpx2.Client) -> None:
    answer = http.get("/hooks/dripjobs/customer.created")
    assert (answer.status_code, answer.json()["error"]) == (405, "method_not_allowed")
    assert answer.headers["allow"] == "POST"
    assert "use POST" in answer.json()["message"]


@pytest.mark.parametrize("path", ["/hooks/dripjobs/", "/hooks/dripjobs", "/hooks/dripjobs/a/b/c"])
def test_a_dripjobs_url_without_an_event_is_a_json_404_that_says_how(
    http: httpx2.Client, path: str
) -> None:
    answer = http.post(path, json=CUSTOMER, headers=BEARER, follow_redirects=True)
    assert (answer.status_code, answer.json()["error"]) == (404, "not_found")
    assert "/hooks/dripjobs/<event>" in answer.json()["message"]


def test_an_unknown_path_is_a_json_404(http: httpx2.Client) -> None:
    answer = http.get("/wp-login.php")
    assert answer.headers["content-type"] == "application/json"
    assert set(answer.json()) == {"error", "message"}


def test_an_unexpected_failure_is_a_json_500() -> None:
    app = FastAPI()
    install_json_errors(app)

    async def boom() -> None:
        raise RuntimeError("a bug")

    app.add_api_route("/boom", boom)
    with serve_in_thread(app) as url:
        answer = httpx2.get(f"{url}/boom")
    assert (answer.status_code, answer.json()["error"]) == (500, "internal_error")
    assert "a bug" not in answer.text


@pytest.mark.parametrize(
    "content_type",
    [None, "application/x-www-form-urlencoded", "text/plain;charset=UTF-8"],
)
def test_json_sent_without_saying_so_is_read_as_json(
    http: httpx2.Client, content_type: str | None
) -> None:
    headers = dict(BEARER)
    if content_type is not None:
        headers["content-type"] = content_type
    body = b'  {"customer_id": "C-9", "first_name": "Ava"}'
    answer = http.post("/hooks/dripjobs/customer.created", content=body, headers=headers)
    assert answer.status_code == 202, answer.text


def test_broken_json_under_a_form_type_says_to_set_the_content_type(http: httpx2.Client) -> None:
    headers = BEARER | {"content-type": "application/x-www-form-urlencoded"}
    answer = http.post(
        "/hooks/dripjobs/customer.created", content=b'{"customer_id": ', headers=headers
    )
    assert (answer.status_code, answer.json()["error"]) == (400, "malformed_body")
    assert "Content-Type: application/json" in answer.json()["message"]


def test_a_real_form_is_still_a_form(http: httpx2.Client) -> None:
    answer = http.post(
        "/hooks/dripjobs/customer.created", data={"Customer ID": "C-3"}, headers=BEARER
    )
    assert answer.status_code == 202


# -- item 10 (part): /healthz says when nothing can be received ---------------------------------


def _health(http: httpx2.Client) -> tuple[int, dict[str, Any]]:
    answer = http.get("/healthz")
    found: dict[str, Any] = answer.json()
    return answer.status_code, found


def test_healthz_is_degraded_with_the_reason_when_no_delivery_can_be_accepted(
    store: sa.Engine, loc_cipher: TokenCipher
) -> None:
    with _client(store, config(secret=None), loc_cipher) as http:
        status, report = _health(http)
        register_location(store, loc_cipher, "loc_agency", now=time.time())
        after, healthy = _health(http)

    assert (status, report["status"]) == (503, "degraded")
    assert "dripjobs.secret" in report["reasons"][0]
    assert report["database"]["ok"] is True  # the rest of the report is still there
    # A location with its own connection can receive: no longer degraded.
    assert (after, healthy["status"]) == (200, "ok")


def test_healthz_is_degraded_without_a_location_for_the_default_connection(
    store: sa.Engine, loc_cipher: TokenCipher
) -> None:
    with _client(store, config(location=None), loc_cipher) as http:
        status, report = _health(http)
    assert (status, report["status"]) == (503, "degraded")
    assert "ghl.location_id" in report["reasons"][0]
