"""Token encryption at rest: Fernet (AES-128-CBC + HMAC-SHA256) with key rotation.

Where the keys come from, first match wins:

1. `GHLSYNC_SECRET_KEY` — one or more Fernet keys, comma-separated. The first encrypts, all
   decrypt, so rotating means: put a new key first, keep the old one after it, run
   `TokenCipher.rotate(engine)` (or `ghlsync auth rotate-key`), then drop the old key.
2. A key file, one key per line, same order rule: `GHLSYNC_SECRET_KEY_FILE`, else
   `$XDG_CONFIG_HOME/ghlsync/secret.key` (`~/.config/ghlsync/secret.key`). It is created with
   a fresh key, mode 0600 in a 0700 folder, when missing. It lives apart from the database on
   purpose: a copied database file alone does not reveal the tokens.

Every row records the id of the key that sealed it (`ghl_connections.key_id`): a short
fingerprint, never the key.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path

import sqlalchemy as sa
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from ghlsync._secret import Secret
from ghlsync.store._engine import begin_immediate
from ghlsync.store._tables import ghl_connections

__all__ = [
    "SecretKeyError",
    "TokenCipher",
    "default_key_file",
    "generate_key",
    "key_fingerprint",
    "load_key_file",
]

log = logging.getLogger("ghlsync.auth")


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
        """Re-encrypt every stored token under the newest key; returns the rows changed."""
        cols = ghl_connections.c
        changed = 0
        with begin_immediate(engine) as conn:
            rows = conn.execute(
                sa.select(cols.key, cols.access_token, cols.refresh_token, cols.key_id)
                .with_for_update()
                .order_by(cols.key)
            ).all()
            for row in rows:
                if row.key_id == self.key_id:
                    continue
                values = {"access_token": self.reseal(row.access_token), "key_id": self.key_id}
                if row.refresh_token is not None:
                    values["refresh_token"] = self.reseal(row.refresh_token)
                conn.execute(ghl_connections.update().where(cols.key == row.key).values(values))
                changed += 1
        log.info("re-encrypted %d connection(s) under key %s", changed, self.key_id)
        return changed

    def __repr__(self) -> str:
        return f"TokenCipher(key_ids={self.key_ids!r})"


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
