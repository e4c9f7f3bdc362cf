"""Token encryption at rest: Fernet (AES-128-CBC + HMAC-SHA256) with key rotation.

Where the keys come from, first match wins:

1. `GHLSYNC_SECRET_KEY` — one or more Fernet keys, comma-separated. The first encrypts, all
   decrypt, so rotating means: put a new key first, keep the old one after it, run
   `TokenCipher.rotate(engine)` (or `ghlsync auth rotate-key`: every secret in the store, GHL
   tokens and DripJobs webhook secrets, in one transaction), then drop the old key.
2. A key file, one key per line, same order rule: `GHLSYNC_SECRET_KEY_FILE`, else
   `$XDG_CONFIG_HOME/ghlsync/secret.key` (`~/.config/ghlsync/secret.key`). It is created with
   a fresh key, mode 0600 in a 0700 folder, when missing. It lives apart from the database on
   purpose: a copied database file alone does not reveal the tokens.

Every row records the id of the key that sealed it (`key_id` of `ghl_connections` and
`dripjobs_connections`): a short fingerprint, never the key.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from ghlsync._secret import Secret
from ghlsync.store._engine import begin_immediate
from ghlsync.store._tables import ghl_connections
from ghlsync.store._tables_locations import dripjobs_connections

__all__ = [
    "SecretKeyError",
    "TokenCipher",
    "default_key_file",
    "generate_key",
    "key_fingerprint",
    "load_key_file",
    "store_holds_secrets",
]

log = logging.getLogger("ghlsync.auth")


# Every table holding ciphertext: (table, primary key, sealed columns; the first never null).
# `key_id` in each row names the key that sealed it.
_SEALED: tuple[tuple[sa.Table, str, tuple[str, ...]], ...] = (
    (ghl_connections, "key", ("access_token", "refresh_token")),
    (dripjobs_connections, "connection_id", ("secret",)),
)


class SecretKeyError(Exception):
    """The encryption keys are missing, malformed, or cannot open a stored token."""


def generate_key() -> str:
    """A new random Fernet key (url-safe base64 text)."""
    return Fernet.generate_key().decode("ascii")


def key_fingerprint(key: str) -> str:
    """A short public id for `key` (what `ghl_connections.key_id` stores)."""
    return "k" + hashlib.sha256(key.encode("ascii")).hexdigest()[:12]


def default_key_file(env: Mapping[str, str] | None = None) -> Path:
    """`GHLSYNC_SECRET_KEY_FILE`, else `secret.key` in ghlsync's XDG config folder."""
    env = os.environ if env is None else env
    if env.get("GHLSYNC_SECRET_KEY_FILE"):
        return Path(env["GHLSYNC_SECRET_KEY_FILE"]).expanduser()
    base = Path(env.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "ghlsync" / "secret.key"


class TokenCipher:
    """Seals and opens tokens; the first key encrypts, every key decrypts."""

    def __init__(self, keys: Sequence[str | Secret]) -> None:
        texts = [k.reveal() if isinstance(k, Secret) else k for k in keys]
        texts = [t.strip() for t in texts if t.strip()]
        if not texts:
            raise SecretKeyError("no encryption key given (set GHLSYNC_SECRET_KEY)")
        try:
            self._fernet = MultiFernet([Fernet(t.encode("ascii")) for t in texts])
        except ValueError as exc:
            raise SecretKeyError(
                "GHLSYNC_SECRET_KEY must be Fernet keys (32 url-safe base64 bytes), "
                "comma-separated; make one with `ghlsync auth new-key`"
            ) from exc
        self.key_ids = [key_fingerprint(t) for t in texts]

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, key_file: Path | None = None
    ) -> TokenCipher:
        """Keys from `GHLSYNC_SECRET_KEY`, else from the key file (created when missing)."""
        env = os.environ if env is None else env
        if env.get("GHLSYNC_SECRET_KEY"):
            return cls(env["GHLSYNC_SECRET_KEY"].split(","))
        return cls(load_key_file(key_file or default_key_file(env)))

    @property
    def key_id(self) -> str:
        """The id of the key new ciphertexts are sealed with."""
        return self.key_ids[0]

    def encrypt(self, value: Secret | str) -> bytes:
        """Seal one token."""
        text = value.reveal() if isinstance(value, Secret) else value
        return self._fernet.encrypt(text.encode("utf-8"))

    def decrypt(self, data: bytes) -> Secret:
        """Open one token sealed by any configured key."""
        try:
            return Secret(self._fernet.decrypt(bytes(data)).decode("utf-8"))
        except InvalidToken:
            raise SecretKeyError(
                "a stored token cannot be decrypted with the configured keys "
                f"{self.key_ids}: add the key it was sealed with to GHLSYNC_SECRET_KEY"
            ) from None

    def reseal(self, data: bytes) -> bytes:
        """Re-encrypt `data` under the first key (for rotation)."""
        try:
            return self._fernet.rotate(bytes(data))
        except InvalidToken:
            self.decrypt(data)  # raises the explanatory error
            raise

    def rotate(self, engine: sa.Engine) -> int:
        """Re-encrypt every secret in the store under the newest key; returns the rows changed.

        GHL tokens and DripJobs connection secrets alike, in one transaction: either every row
        is sealed under the new key, or (on any failure) none is changed.
        """
        changed = 0
        with begin_immediate(engine) as conn:
            for table, key_column, sealed in _SEALED:
                changed += self._rotate_table(conn, table, table.c[key_column], sealed)
        log.info("re-encrypted %d stored secret row(s) under key %s", changed, self.key_id)
        return changed

    def _rotate_table(
        self, conn: sa.Connection, table: sa.Table, key: sa.Column[Any], sealed: tuple[str, ...]
    ) -> int:
        query = sa.select(key, table.c.key_id, *(table.c[name] for name in sealed))
        rows = conn.execute(query.with_for_update().order_by(key)).all()
        changed = 0
        for row in rows:
            if row.key_id == self.key_id:
                continue
            values: dict[str, Any] = {"key_id": self.key_id}
            for name in sealed:
                if row._mapping[name] is not None:
                    values[name] = self.reseal(row._mapping[name])
            conn.execute(table.update().where(key == row[0]).values(values))
            changed += 1
        return changed

    def check(self, engine: sa.Engine) -> None:
        """Raise `SecretKeyError` unless these keys open the store's secrets (one of each key
        they were sealed with is tried): a wrong key is found at start, not per delivery."""
        with engine.connect() as conn:
            for table, _, sealed in _SEALED:
                key_ids = conn.execute(sa.select(table.c.key_id).distinct()).scalars().all()
                for key_id in key_ids:
                    same = table.c.key_id.is_(None) if key_id is None else table.c.key_id == key_id
                    query = sa.select(table.c[sealed[0]]).where(same).limit(1)
                    self._open_or_explain(conn.execute(query).scalar_one(), key_id)

    def _open_or_explain(self, data: bytes, key_id: str | None) -> None:
        try:
            self._fernet.decrypt(bytes(data))
        except InvalidToken:
            raise SecretKeyError(
                f"the configured encryption keys {self.key_ids} cannot open secrets stored "
                f"under key {key_id}: put that key in GHLSYNC_SECRET_KEY (comma-separated, "
                "newest first) or use the key file they were made with"
            ) from None

    def __repr__(self) -> str:
        return f"TokenCipher(key_ids={self.key_ids!r})"


def store_holds_secrets(engine: sa.Engine) -> bool:
    """True when some table of the store holds ciphertext (so the key will be needed)."""
    with engine.connect() as conn:
        for table, _, sealed in _SEALED:
            query = sa.select(table.c[sealed[0]]).limit(1)
            if conn.execute(query).first() is not None:
                return True
    return False


def load_key_file(path: Path) -> list[str]:
    """The keys in `path`, one a line; a new file with one fresh key when it is missing."""
    try:
        if not path.exists():
            _create_key_file(path)
        mode = stat.S_IMODE(path.stat().st_mode)
        text = path.read_text("ascii")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise SecretKeyError(
            f"cannot use the key file {path} ({exc.__class__.__name__}: {reason}); "
            "set GHLSYNC_SECRET_KEY or GHLSYNC_SECRET_KEY_FILE"
        ) from None
    if mode & 0o077:
        log.warning("key file %s is readable by others (mode %o); chmod 600 it", path, mode)
    keys = [line.strip() for line in text.splitlines()]
    return [k for k in keys if k and not k.startswith("#")]


def _create_key_file(path: Path) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(generate_key() + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        # link() fails when another process won the race; then its complete file is used.
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
            log.info("created encryption key file %s (mode 600)", path)
    finally:
        tmp.unlink(missing_ok=True)
