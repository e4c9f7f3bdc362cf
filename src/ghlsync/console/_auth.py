"""Who may use the console: the admin password, the session cookie and the CSRF token.

`Gate.check(request)` is what every page and form goes through. Until a password is set, every
console path answers the page that says how to set one (`NoPassword`).
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass

import sqlalchemy as sa
from starlette.requests import Request

from ghlsync._clock import Clock
from ghlsync.console._password import AdminSecret, load_admin, verify_password
from ghlsync.console._session import (
    LOGIN_COOKIE,
    LoginLimiter,
    Session,
    check_csrf,
    login_token,
    read_session,
)

__all__ = ["Gate", "NoPassword", "NotSignedIn", "Signed"]


class NoPassword(Exception):
    """No admin password is set yet."""


class NotSignedIn(Exception):
    """No valid session cookie."""


@dataclass(frozen=True, slots=True)
class Signed:
    """A signed-in request: the admin row and the session."""

    admin: AdminSecret
    session: Session


class Gate:
    """Checks sessions and sign-ins against the password in the store."""

    def __init__(self, engine: sa.Engine, clock: Clock, limiter: LoginLimiter) -> None:
        self.engine = engine
        self.clock = clock
        self.limiter = limiter

    async def admin(self) -> AdminSecret:
        """The stored password row (read on every request: a new password applies at once)."""
        found = await asyncio.to_thread(load_admin, self.engine)
        if found is None:
            raise NoPassword
        return found

    async def check(self, request: Request) -> Signed:
        """The signed-in session, or `NoPassword` / `NotSignedIn`."""
        admin = await self.admin()
        session = read_session(request, admin.session_key, self.clock.now())
        if session is None:
            raise NotSignedIn
        return Signed(admin, session)

    @staticmethod
    def login_nonce(request: Request) -> tuple[str, bool]:
        """The sign-in cookie's nonce, and whether it is new (to be set on the answer)."""
        nonce = request.cookies.get(LOGIN_COOKIE, "")
        if len(nonce) == 32 and all(c in "0123456789abcdef" for c in nonce):
            return nonce, False
        return secrets.token_hex(16), True

    @staticmethod
    def login_form_ok(admin: AdminSecret, request: Request, given: object) -> bool:
        """True when the sign-in form carries the token of this browser's sign-in cookie."""
        nonce = request.cookies.get(LOGIN_COOKIE, "")
        return bool(nonce) and check_csrf(login_token(admin.session_key, nonce), given)

    async def password_ok(self, admin: AdminSecret, password: str) -> bool:
        """scrypt in a thread: it takes tens of milliseconds and 32 MiB on purpose."""
        return await asyncio.to_thread(verify_password, password, admin.password_hash)
