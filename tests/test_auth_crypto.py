"""Token encryption: keys from the environment or a 0600 key file, rotation, clear errors."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import sqlalchemy as sa

from ghlsync._clock import FakeClock
from ghlsync._secret import Secret
from ghlsync.ghl._crypto import (
    SecretKeyError,
    TokenCipher,
    default_key_file,
    generate_key,
    key_fingerprint,
)
from ghlsync.ghl._oauth import TokenSet
from ghlsync.ghl._vault import TokenVault
from ghlsync.store import create_engine, migrate
from ghlsync.store._tables import ghl_connections

ACCESS = "access-token-at-rest-1234567890"
REFRESH = "refresh-token-at-rest-1234567890"


def test_round_trip_and_key_id() -> None:
    key = generate_key()
    cipher = TokenCipher([key])
    sealed = cipher.encrypt(Secret(ACCESS))
    assert ACCESS.encode() not in sealed
    assert cipher.decrypt(sealed) == Secret(ACCESS)
    assert cipher.key_id == key_fingerprint(key)
    assert key not in repr(cipher) and key not in cipher.key_id


def test_env_keys_first_encrypts_all_decrypt() -> None:
    old, new = generate_key(), generate_key()
    sealed_old = TokenCipher([old]).encrypt("value")
    both = TokenCipher.from_env({"GHLSYNC_SECRET_KEY": f"{new}, {old}"})
    assert both.key_id == key_fingerprint(new)
    assert both.decrypt(sealed_old) == Secret("value")
    assert TokenCipher([new]).decrypt(both.encrypt("x")) == Secret("x")


def test_key_file_created_private_and_reused(tmp_path: Path) -> None:
    env = {"XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    path = default_key_file(env)
    assert path == tmp_path / "cfg" / "ghlsync" / "secret.key"
    first = TokenCipher.from_env(env)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    second = TokenCipher.from_env(env)
    assert second.key_id == first.key_id
    assert second.decrypt(first.encrypt("t")) == Secret("t")
    assert [p.name for p in path.parent.iterdir()] == ["secret.key"]  # no temp file left


def test_key_file_env_override(tmp_path: Path) -> None:
    target = tmp_path / "keys" / "my.key"
    env = {"GHLSYNC_SECRET_KEY_FILE": str(target), "XDG_CONFIG_HOME": str(tmp_path / "no")}
    cipher = TokenCipher.from_env(env)
    assert target.read_text().strip() and cipher.key_id == key_fingerprint(
        target.read_text().strip()
    )
    assert not (tmp_path / "no").exists()


@pytest.mark.parametrize("keys", [[], [""], ["not-a-fernet-key"]])
def test_bad_keys_are_explained(keys: list[str]) -> None:
    with pytest.raises(SecretKeyError, match="GHLSYNC_SECRET_KEY"):
        TokenCipher(keys)


def test_wrong_key_is_explained_without_leaking() -> None:
    sealed = TokenCipher([generate_key()]).encrypt(ACCESS)
    other = TokenCipher([generate_key()])
    with pytest.raises(SecretKeyError, match="cannot be decrypted") as info:
        other.decrypt(sealed)
    assert ACCESS not in str(info.value)


def test_rotate_reencrypts_every_row(database_url: str) -> None:
    engine = create_engine(database_url)
    migrate(engine)
    old, new = generate_key(), generate_key()
    vault = TokenVault(engine, TokenCipher([old]), clock=FakeClock())
    for key in ("loc_a", "loc_b"):
        vault.save(key, TokenSet(Secret(ACCESS + key), Secret(REFRESH + key), 2e9))
    vault.save_private("loc_pit", Secret("pit-token-value-123456"))

    rotating = TokenCipher([new, old])
    assert rotating.rotate(engine) == 3
    assert rotating.rotate(engine) == 0  # already under the newest key

    only_new = TokenCipher([new])
    with engine.connect() as conn:
        rows = conn.execute(sa.select(ghl_connections).order_by(ghl_connections.c.key)).all()
    engine.dispose()
    assert {row.key_id for row in rows} == {key_fingerprint(new)}
    assert only_new.decrypt(rows[0].access_token) == Secret(ACCESS + "loc_a")
    assert only_new.decrypt(rows[1].refresh_token) == Secret(REFRESH + "loc_b")
    assert only_new.decrypt(rows[2].access_token) == Secret("pit-token-value-123456")
    with pytest.raises(SecretKeyError):
        TokenCipher([old]).decrypt(rows[0].access_token)


def test_unusable_key_file_is_explained(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    env = {"GHLSYNC_SECRET_KEY_FILE": str(blocker / "secret.key")}  # parent is a file
    with pytest.raises(SecretKeyError, match="GHLSYNC_SECRET_KEY_FILE"):
        TokenCipher.from_env(env)


def test_loose_key_file_mode_is_warned(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "secret.key"
    key = generate_key()
    path.write_text(f"# my key\n{key}\n")
    path.chmod(0o644)
    cipher = TokenCipher.from_env({"GHLSYNC_SECRET_KEY_FILE": str(path)})
    assert cipher.key_id == key_fingerprint(key)
    assert "chmod 600" in caplog.text
    assert key not in caplog.text
