"""The console's security over plain HTTP against a real app on loopback: the no-password
page, cookie flags, CSRF refusal, the sign-in rate limit, `console set-password`, the
write-back test, dead-letter filters with replay-all-matching, and the activity filters."""

from __future__ import annotations

import base64
import json
import secrets
import time
from pathlib import Path

import httpx2
import sqlalchemy as sa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from typer.testing import CliRunner

from ghlsync.cli import app as cli
from ghlsync.console._password import hash_password, load_admin, verify_password
from ghlsync.console._session import LoginLimiter
from ghlsync.dripjobs._verify import sign
from ghlsync.engine import claim, dead_letter, list_dead_letters
from ghlsync.mapping import AppConfig
from ghlsync.server._thread import serve_in_thread
from ghlsync.store._tables_engine import audit_log
from tests._console_kit import (
    LOCATION,
    PASSWORD,
    ConsoleSite,
    console_config,
    csrf_of,
    sign_in,
    start,
)
from tests._engine_kit import delivery, send


def test_without_a_password_every_console_page_says_how_to_set_one(
    console_store: sa.Engine,
) -> None:
    with start(console_store, password=False) as site, httpx2.Client() as client:
        for path in ("", "/", "/login", "/dead-letters", "/tester?event=lead.created"):
            page = client.get(site.console + path, follow_redirects=True)
            assert page.status_code == 503
            assert "ghlsync console set-password" in page.text
            assert "Dead letters" not in page.text and "csrf" not in page.text
        refused = client.post(f"{site.console}/login", data={"password": "anything at all"})
        assert refused.status_code == 503 and "set-cookie" not in refused.headers


def test_sign_in_sets_a_strict_httponly_cookie_secure_behind_https(
    console_site: ConsoleSite,
) -> None:
    with httpx2.Client() as client:
        assert client.get(f"{console_site.console}/", follow_redirects=False).status_code == 303
        answer = sign_in(client, console_site)
        assert answer.status_code == 303
        cookie = answer.headers["set-cookie"].lower()
        assert "ghlsync_console=" in cookie and "httponly" in cookie
        assert "samesite=strict" in cookie and "path=/console" in cookie
        assert "secure" not in cookie  # plain HTTP on loopback: a Secure cookie would be lost
        overview = client.get(f"{console_site.console}/")
        assert overview.status_code == 200 and "Smith Roofing" in overview.text
        assert "frame-ancestors 'none'" in overview.headers["content-security-policy"]
        out = client.post(f"{console_site.console}/logout", data={"csrf": csrf_of(overview.text)})
        assert out.status_code == 303 and "Max-Age=0" in out.headers["set-cookie"]
        assert client.get(f"{console_site.console}/", follow_redirects=False).status_code == 303
    # Behind a TLS proxy: both cookies are Secure (sent back by hand: this client is on HTTP).
    with httpx2.Client(headers={"x-forwarded-proto": "https"}) as proxied:
        form = proxied.get(f"{console_site.console}/login")
        login_cookie = form.headers["set-cookie"]
        assert "; secure" in login_cookie.lower()
        answer = proxied.post(
            f"{console_site.console}/login",
            data={"csrf": csrf_of(form.text), "password": PASSWORD},
            headers={"cookie": login_cookie.split(";")[0]},
        )
        assert answer.status_code == 303
        assert "; secure" in answer.headers["set-cookie"].lower()


def test_a_wrong_password_and_a_forged_cookie_are_refused(console_site: ConsoleSite) -> None:
    with httpx2.Client() as client:
        assert sign_in(client, console_site, "not the password").status_code == 401
        client.cookies.set("ghlsync_console", "9999999999.abcd.0123", path="/console")
        assert client.get(f"{console_site.console}/", follow_redirects=False).status_code == 303


def test_forms_without_the_csrf_token_change_nothing(console_site: ConsoleSite) -> None:
    (letter,) = list_dead_letters(console_site.engine)
    with httpx2.Client() as client:
        sign_in(client, console_site)
        url = f"{console_site.console}/dead-letters/{letter.id}/replay"
        for form in ({}, {"csrf": "0" * 64}):
            refused = client.post(url, data=form)
            assert refused.status_code == 403 and "Form expired" in refused.text
        assert list_dead_letters(console_site.engine) == [letter]  # not replayed
        rotate = client.post(
            f"{console_site.console}/connections/{console_site.connection_id}/rotate"
        )
        assert rotate.status_code == 403
        token = csrf_of(client.get(f"{console_site.console}/dead-letters").text)
        assert client.post(url, data={"csrf": token}).status_code == 200
        assert list_dead_letters(console_site.engine) == []
    with httpx2.Client() as stranger:  # the sign-in form itself needs its cookie's token
        assert (
            stranger.post(
                f"{console_site.console}/login", data={"csrf": "0" * 64, "password": PASSWORD}
            ).status_code
            == 403
        )


def test_sign_in_is_rate_limited_per_address(console_site: ConsoleSite) -> None:
    with httpx2.Client() as client:
        for _ in range(5):
            assert sign_in(client, console_site, "wrong guess").status_code == 401
        limited = sign_in(client, console_site)  # even the right password, now
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) > 0
        assert "ghlsync_console=" not in limited.headers.get("set-cookie", "")


def test_send_test_posts_a_signed_write_back_to_the_catch_hook(
    console_store: sa.Engine,
) -> None:

    caught: list[tuple[dict[str, str], bytes]] = []

    async def catch(request: Request) -> Response:
        caught.append((dict(request.headers), await request.body()))
        return Response(status_code=200)

    whsec = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    with serve_in_thread(Starlette(routes=[Route("/catch", catch, methods=["POST"])])) as hook:
        raw = console_config().model_dump(mode="python", by_alias=True)
        raw["writeback"] = {"secret": whsec, "actions": {"create_lead": {"url": f"{hook}/catch"}}}
        config = AppConfig.model_validate(raw)
        with start(console_store, config=config) as site, httpx2.Client() as client:
            sign_in(client, site)
            page = client.get(f"{site.console}/connections")
            assert f"{hook}/catch" in page.text and "Signed with" in page.text
            answer = client.post(
                f"{site.console}/writeback/create_lead/test", data={"csrf": csrf_of(page.text)}
            )
    assert "create_lead: the URL accepted the test (200)." in answer.text
    ((headers, body),) = caught
    assert json.loads(body)["data"] == {"sent_by": "ghlsync console", "test": "true"}
    webhook_id, stamp = headers["webhook-id"], int(headers["webhook-timestamp"])
    assert headers["webhook-signature"] == sign(whsec, webhook_id, stamp, body)


def test_the_limiter_forgets_failures_after_its_window() -> None:
    limiter = LoginLimiter(attempts=2, window=60)
    limiter.failed("a", 100.0)
    limiter.failed("a", 110.0)
    assert limiter.retry_after("a", 120.0) == 41 and limiter.retry_after("b", 120.0) == 0
    assert limiter.retry_after("a", 161.0) == 0  # the first failure aged out


def test_scrypt_hashes_verify_only_the_password() -> None:
    stored = hash_password("correct horse", n=2**10)
    assert stored.startswith("scrypt$1024$8$1$")
    assert verify_password("correct horse", stored)
    assert not verify_password("correct horsE", stored)
    assert not verify_password("correct horse", "garbage")


def test_set_password_command_stores_a_hash_and_signs_everyone_out(
    tmp_path: Path, console_store: sa.Engine
) -> None:
    config = tmp_path / "ghlsync.yaml"
    config.write_text(f"database_url: {console_store.url}\n")
    runner = CliRunner()
    short = runner.invoke(
        cli, ["console", "set-password", "--config", str(config), "--stdin"], input="short\n"
    )
    assert short.exit_code == 2 and "at least 10" in short.output
    done = runner.invoke(
        cli,
        ["console", "set-password", "--config", str(config), "--stdin"],
        input="the first password\n",
    )
    assert done.exit_code == 0, done.output
    first = load_admin(console_store)
    assert first is not None and "the first password" not in first.password_hash
    assert verify_password("the first password", first.password_hash)
    differ = runner.invoke(
        cli,
        ["console", "set-password", "--config", str(config)],
        input="one password!!\nanother one!!\n",
    )
    assert differ.exit_code == 2 and "differ" in differ.output
    runner.invoke(
        cli,
        ["console", "set-password", "--config", str(config), "--stdin"],
        input="the second password\n",
    )
    second = load_admin(console_store)
    assert second is not None and second.session_key != first.session_key
    assert time.time() > 0


def test_replay_all_matching_replays_only_what_the_filters_match(
    console_site: ConsoleSite,
) -> None:

    send(console_site.engine, delivery("other-1", location="elsewhere", email="x"))

    for item in claim(console_site.engine, "w2", ["elsewhere"], 10, 30):
        assert dead_letter(console_site.engine, item, "GHL answered 401", "AuthError")
    with httpx2.Client() as client:
        sign_in(client, console_site)
        listed = client.get(f"{console_site.console}/dead-letters", params={"text": "401"})
        assert "other-1" in listed.text and "cust-bad" not in listed.text
        assert "GHL refused the sign-in token" in listed.text
        answer = client.post(
            f"{console_site.console}/dead-letters/replay",
            data={"csrf": csrf_of(listed.text), "location": "", "entity": "", "text": "401"},
        )
        assert "1 dead letter queued again." in answer.text
    (left,) = list_dead_letters(console_site.engine)
    assert (left.location_id, left.source_id) == (LOCATION, "cust-bad")


def test_activity_filters_by_location_direction_and_outcome(console_site: ConsoleSite) -> None:

    rows = [
        ("loc-a", "contact", "c-ok", "created"),
        ("loc-a", "contact", "c-dead", "dead"),
        ("loc-b", "task", "t-ok", "updated"),
    ]
    with console_site.engine.begin() as conn:
        conn.execute(
            sa.insert(audit_log),
            [
                {
                    "at": time.time(),
                    "location_id": loc,
                    "entity_type": kind,
                    "source_id": sid,
                    "action": action,
                    "calls": 1,
                }
                for loc, kind, sid, action in rows
            ],
        )
    with httpx2.Client() as client:
        sign_in(client, console_site)

        def shown(**params: str) -> set[str]:
            text = client.get(f"{console_site.console}/activity", params=params).text
            return {sid for _, _, sid, _ in rows if sid in text}

        assert shown() == {"c-ok", "c-dead", "t-ok"}
        assert shown(location="loc-a") == {"c-ok", "c-dead"}
        assert shown(outcome="failed") == {"c-dead"}
        assert shown(outcome="ok", location="loc-b") == {"t-ok"}
        assert shown(direction="to_dripjobs") == set()
