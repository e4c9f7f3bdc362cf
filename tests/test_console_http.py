"""The console's security over plain HTTP against a real app on loopback: the no-password
page, cookie flags, CSRF refusal, the sign-in rate limit, and `console set-password`."""

from __future__ import annotations

import time
from pathlib import Path

import httpx2
import sqlalchemy as sa
from typer.testing import CliRunner

from ghlsync.cli import app as cli
from ghlsync.console._password import hash_password, load_admin, verify_password
from ghlsync.console._session import LoginLimiter
from ghlsync.engine import list_dead_letters
from tests._console_kit import (
    PASSWORD,
    ConsoleSite,
    csrf_of,
    sign_in,
    start,
)


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
