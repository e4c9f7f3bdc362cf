"""Console sessions: signed cookies, CSRF tokens and the sign-in rate limit.

Sessions are stateless: the cookie is `expires.nonce.mac`, the MAC an HMAC-SHA256 under the
key stored with the password (`console_admin.session_key`), so every `serve` process sharing
the store accepts it, and setting a new password ends every session. The CSRF token of a form
is an HMAC of the session's nonce (of the sign-in cookie's nonce on the sign-in form): a page
from another site can neither read nor compute it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from collections import deque
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

__all__ = [
    "LOGIN_COOKIE",
    "SESSION_COOKIE",
    "LoginLimiter",
    "Session",
    "check_csrf",
    "clear_session",
    "is_https",
    "issue_session",
    "login_token",
    "read_session",
    "set_cookie",
]

SESSION_COOKIE = "ghlsync_console"
LOGIN_COOKIE = "ghlsync_console_login"
SESSION_SECONDS = 12 * 3600
COOKIE_PATH = "/console"


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in browser: its nonce (what the CSRF token is made from) and expiry."""

    nonce: str
    expires: int
    csrf: str


def _mac(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def is_https(request: Request) -> bool:
    """True on HTTPS, directly or behind a proxy that says so (`X-Forwarded-Proto`)."""
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return request.url.scheme == "https" or forwarded == "https"


def set_cookie(response: Response, request: Request, name: str, value: str, max_age: int) -> None:
    """HttpOnly, SameSite=Strict, path /console; Secure whenever the request came over HTTPS."""
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=COOKIE_PATH,
        httponly=True,
        secure=is_https(request),
        samesite="strict",
    )


def issue_session(key: bytes, now: float) -> tuple[str, Session]:
    """A new cookie value and the session it stands for."""
    nonce = secrets.token_hex(16)
    expires = int(now) + SESSION_SECONDS
    body = f"{expires}.{nonce}"
    return f"{body}.{_mac(key, body)}", Session(nonce, expires, _mac(key, "csrf:" + nonce))


def read_session(request: Request, key: bytes, now: float) -> Session | None:
    """The session of a valid, unexpired cookie, else None."""
    raw = request.cookies.get(SESSION_COOKIE, "")
    expires, _, rest = raw.partition(".")
    nonce, _, mac = rest.partition(".")
    if not (expires.isdigit() and nonce and mac):
        return None
    if not hmac.compare_digest(mac, _mac(key, f"{expires}.{nonce}")) or int(expires) <= now:
        return None
    return Session(nonce, int(expires), _mac(key, "csrf:" + nonce))


def clear_session(response: Response) -> None:
    """Tell the browser to drop the session cookie."""
    response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH)


def login_token(key: bytes, nonce: str) -> str:
    """The CSRF token of the sign-in form, bound to the sign-in cookie's nonce."""
    return _mac(key, "login:" + nonce)


def check_csrf(expected: str, given: object) -> bool:
    """True when the form's token is the expected one."""
    return isinstance(given, str) and hmac.compare_digest(expected.encode(), given.encode())


class LoginLimiter:
    """At most `attempts` failed sign-ins per client address in `window` seconds.

    In memory, per `serve` process: enough to turn a password guesser's thousands of tries a
    second into a handful a minute. A success clears the address's failures.
    """

    def __init__(self, attempts: int = 5, window: float = 300.0) -> None:
        self._attempts = attempts
        self._window = window
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, client: str, now: float) -> int:
        """Seconds until `client` may try again; 0 when it may now."""
        with self._lock:
            recent = self._recent(client, now)
            if len(recent) < self._attempts:
                return 0
            return max(1, int(recent[0] + self._window - now) + 1)

    def failed(self, client: str, now: float) -> None:
        """Count one failed attempt."""
        with self._lock:
            self._recent(client, now).append(now)
            if len(self._failures) > 10_000:  # bounded memory under a spray of addresses
                self._failures = {k: v for k, v in self._failures.items() if v}

    def succeeded(self, client: str) -> None:
        """Forget the client's failures."""
        with self._lock:
            self._failures.pop(client, None)

    def _recent(self, client: str, now: float) -> deque[float]:
        recent = self._failures.setdefault(client, deque())
        while recent and recent[0] <= now - self._window:
            recent.popleft()
        return recent
