"""The console's admin password: scrypt hashes, kept in the store (`console_admin`).

scrypt (standard library) is memory-hard: n=2**15, r=8 uses 32 MiB per guess, so a stolen
store is slow to attack. The hash string names its parameters, so they can be raised later
without invalidating passwords already set.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

import sqlalchemy as sa

from ghlsync.store._tables_console import console_admin

__all__ = [
    "MIN_LENGTH",
    "AdminSecret",
    "hash_password",
    "load_admin",
    "set_password",
    "verify_password",
]

MIN_LENGTH = 10
_N, _R, _P = 2**15, 8, 1
_MAXMEM = 64 * 1024 * 1024  # above what n and r need (128 * n * r = 32 MiB)


@dataclass(frozen=True, slots=True)
class AdminSecret:
    """The stored row: the password hash and the key that signs session cookies."""

    password_hash: str
    session_key: bytes


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def hash_password(password: str, *, n: int = _N, r: int = _R, p: int = _P) -> str:
    """`scrypt$n$r$p$salt$hash` (base64) for `password`, with a fresh 16-byte salt."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=_MAXMEM, dklen=32)
    return f"scrypt${n}${r}${p}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    """True when `password` matches the hash string (constant-time comparison)."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        given = hashlib.scrypt(
            password.encode(),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=_MAXMEM,
            dklen=len(expected),
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(given, expected)


def load_admin(engine: sa.Engine) -> AdminSecret | None:
    """The stored password hash and cookie key, or None while no password is set."""
    with engine.connect() as conn:
        row = conn.execute(sa.select(console_admin).where(console_admin.c.id == 1)).one_or_none()
    if row is None:
        return None
    return AdminSecret(row.password_hash, bytes.fromhex(row.session_key))


def set_password(engine: sa.Engine, password: str, *, now: float) -> None:
    """Store a new password hash and a new cookie key (every open session ends)."""
    if len(password) < MIN_LENGTH:
        raise ValueError(f"the password must be at least {MIN_LENGTH} characters long")
    values = {
        "password_hash": hash_password(password),
        "session_key": secrets.token_hex(32),
        "updated_at": now,
    }
    with engine.begin() as conn:
        changed = conn.execute(
            sa.update(console_admin).where(console_admin.c.id == 1).values(**values)
        ).rowcount
        if not changed:
            conn.execute(sa.insert(console_admin).values(id=1, **values))
