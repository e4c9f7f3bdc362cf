"""`ghlsync auth rotate-key` re-encrypts every secret in the store, in one transaction.

After rotating and dropping the old key, every per-location DripJobs URL still accepts its
secret and every GHL token still opens (issue 8, item 2).
"""

from __future__ import annotations

import asyncio

import httpx2
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from ghlsync._secret import Secret
from ghlsync.cli import app
from ghlsync.engine.locations._directory import LocationDirectory
from ghlsync.engine.locations._rows import register_location
from ghlsync.ghl._crypto import SecretKeyError, TokenCipher, generate_key, key_fingerprint
from ghlsync.ghl._vault import TokenVault
from ghlsync.server import create_app, serve_in_thread
from ghlsync.store._tables import ghl_connections
from ghlsync.store._tables_locations import dripjobs_connections
from tests._locations_kit import base_config


def _key_ids(engine: sa.Engine, table: sa.Table) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(sa.select(table.c.key_id)).scalars())


def test_rotate_then_drop_the_old_key_keeps_every_url_and_token_working(
    locations_store: sa.Engine, database_url: str
) -> None:
    old, new = generate_key(), generate_key()
    old_cipher = TokenCipher([old])
    b = register_location(locations_store, old_cipher, "loc_b", now=1.0)
    TokenVault(locations_store, old_cipher).save_private("loc_b", Secret("pit-b-0123456789"))
    assert b.new_secret is not None

    result = CliRunner().invoke(
        app,
        ["auth", "rotate-key", "--database-url", database_url],
        env={"GHLSYNC_SECRET_KEY": f"{new},{old}"},
    )

    assert result.exit_code == 0, result.output
    assert "Re-encrypted 2 stored secret(s)" in result.output
    assert _key_ids(locations_store, dripjobs_connections) == {key_fingerprint(new)}
    assert _key_ids(locations_store, ghl_connections) == {key_fingerprint(new)}
    only_new = TokenCipher([new])  # the old key is gone
    token = asyncio.run(TokenVault(locations_store, only_new).token("loc_b"))
    assert token.reveal() == "pit-b-0123456789"
    config = base_config(location_id="loc_a", token="pit-a")
    directory = LocationDirectory(locations_store, config, only_new)
    server = create_app(engine=locations_store, config=config, locations=directory)
    with serve_in_thread(server) as url, httpx2.Client(base_url=url) as http:
        answer = http.post(
            f"/hooks/dripjobs/{b.connection_id}/customer.created",
            json={"customer_id": "c1"},
            headers={"Authorization": f"Bearer {b.new_secret.reveal()}"},
        )
    assert answer.status_code == 202, answer.text


def test_rotation_is_all_or_nothing(locations_store: sa.Engine) -> None:
    old, new, lost = generate_key(), generate_key(), generate_key()
    TokenVault(locations_store, TokenCipher([old])).save_private("loc_a", Secret("pit-a-0123456"))
    register_location(locations_store, TokenCipher([lost]), "loc_z", now=1.0)

    # The DripJobs secret was sealed with a key nobody has any more: nothing may change.
    with pytest.raises(SecretKeyError):
        TokenCipher([new, old]).rotate(locations_store)

    assert _key_ids(locations_store, ghl_connections) == {key_fingerprint(old)}
    assert _key_ids(locations_store, dripjobs_connections) == {key_fingerprint(lost)}


def test_check_names_the_key_the_store_needs(locations_store: sa.Engine) -> None:
    sealed_with = generate_key()
    register_location(locations_store, TokenCipher([sealed_with]), "loc_b", now=1.0)

    TokenCipher([sealed_with]).check(locations_store)
    with pytest.raises(SecretKeyError, match=key_fingerprint(sealed_with)):
        TokenCipher([generate_key()]).check(locations_store)
