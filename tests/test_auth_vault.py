"""TokenVault on SQLite and PostgreSQL: encryption at rest, refresh rules, single flight."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from ghlsync._clock import FakeClock
from ghlsync._secret import Secret
from ghlsync.ghl import _vault as vault_module
from ghlsync.ghl._crypto import TokenCipher, generate_key
from ghlsync.ghl._errors import ReconnectNeededError
from ghlsync.ghl._oauth import LocationInactiveError, OAuthApp, TokenSet
from ghlsync.ghl._vault import LOCATION_INACTIVE, RECONNECT_NEEDED, TokenVault
from ghlsync.store import create_engine, migrate
from ghlsync.store._tables import ghl_connections
from tests._auth_fakes import CLIENT_ID, CLIENT_SECRET, FakeTokenEndpoint

KEY = "loc_1"


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    engine = create_engine(database_url)
    migrate(engine)
    yield engine
    engine.dispose()


class World:
    """A vault wired to a fake GHL token endpoint and a clock the test moves."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.clock = FakeClock()
        self.ghl = FakeTokenEndpoint()
        self.cipher = TokenCipher([generate_key()])
        self.oauth = OAuthApp(
            CLIENT_ID,
            Secret(CLIENT_SECRET),
            "http://127.0.0.1/cb",
            transport=self.ghl.transport(),
            clock=self.clock,
            base_url="https://ghl.test",
        )
        self.vault = self.new_vault()

    def new_vault(self) -> TokenVault:
        return TokenVault(self.engine, self.cipher, self.oauth, clock=self.clock)

    def connect(self, expires_in: float) -> tuple[str, str]:
        access, refresh = self.ghl.issue()
        tokens = TokenSet(
            Secret(access),
            Secret(refresh),
            self.clock.now() + expires_in,
            scope="contacts.readonly",
            location_id=KEY,
            company_id="comp_1",
        )
        self.vault.save(KEY, tokens)
        return access, refresh


@pytest.fixture
def world(engine: sa.Engine) -> World:
    return World(engine)


def _raw_row(engine: sa.Engine) -> sa.Row[tuple[object, ...]]:
    with engine.connect() as conn:
        row = conn.execute(sa.select(ghl_connections).where(ghl_connections.c.key == KEY)).one()
    return row


async def test_tokens_are_encrypted_at_rest(world: World) -> None:
    access, refresh = world.connect(expires_in=3600)
    row = _raw_row(world.engine)
    raw = b"".join(bytes(v) for v in (row.access_token, row.refresh_token))
    assert access.encode() not in raw and refresh.encode() not in raw
    assert row.key_id == world.cipher.key_id
    assert await world.vault.token(KEY) == Secret(access)
    assert world.ghl.calls == []


async def test_proactive_refresh_inside_the_margin(world: World) -> None:
    access, _ = world.connect(expires_in=3600)
    world.clock.advance(3600 - 299)  # now inside the 300 s margin
    fresh = await world.vault.token(KEY)
    assert fresh != Secret(access)
    assert [c["grant_type"] for c in world.ghl.calls] == ["refresh_token"]
    status = world.vault.status(KEY)
    assert status is not None
    assert status.expires_in(world.clock.now()) == 86399
    assert status.scopes == "contacts.readonly contacts.write"
    # The rotated refresh token was persisted: a brand-new vault uses it successfully.
    world.clock.advance(86399)
    assert await world.new_vault().token(KEY) not in (fresh, Secret(access))
    assert len(world.ghl.calls) == 2


async def test_concurrent_callers_share_one_refresh(world: World) -> None:
    world.connect(expires_in=-10)  # already expired
    results = await asyncio.gather(*(world.vault.token(KEY) for _ in range(20)))
    assert len(world.ghl.calls) == 1
    assert len(set(results)) == 1
    assert await world.vault.token(KEY) == results[0]


async def test_two_vaults_refresh_once_through_the_store(world: World) -> None:
    world.connect(expires_in=-10)
    other = world.new_vault()  # another process, as far as the store can tell
    first = await world.vault.token(KEY)
    second = await other.token(KEY)
    assert first == second
    assert len(world.ghl.calls) == 1


async def test_after_unauthorized_refreshes_once(world: World) -> None:
    access, _ = world.connect(expires_in=3600)
    fresh = await world.vault.after_unauthorized(KEY, Secret(access))
    assert fresh is not None and fresh != Secret(access)
    # A second caller still holding the old token gets the already-refreshed one, no call.
    assert await world.new_vault().after_unauthorized(KEY, Secret(access)) == fresh
    assert len(world.ghl.calls) == 1


async def test_invalid_grant_marks_reconnect_needed(world: World) -> None:
    _, refresh = world.connect(expires_in=-10)
    world.ghl.valid_refresh.discard(refresh)  # e.g. spent by another installation
    with pytest.raises(ReconnectNeededError, match="ghlsync auth login"):
        await world.vault.token(KEY)
    status = world.vault.status(KEY)
    assert status is not None and status.status == RECONNECT_NEEDED
    assert status.status_message == "reconnect needed: run `ghlsync auth login`"
    with pytest.raises(ReconnectNeededError):
        await world.new_vault().token(KEY)
    assert len(world.ghl.calls) == 1  # no retry storm against a dead token
    world.connect(expires_in=3600)  # logging in again heals the connection
    assert (await world.vault.token(KEY)).reveal().startswith("access-token-")


async def test_location_not_active_keeps_the_token(world: World) -> None:
    world.connect(expires_in=-10)
    before = _raw_row(world.engine)
    world.ghl.answer = (400, {"statusCode": 400, "message": "Location is not active"})
    with pytest.raises(LocationInactiveError):
        await world.vault.token(KEY)
    after = _raw_row(world.engine)
    assert bytes(after.refresh_token) == bytes(before.refresh_token)
    assert after.status == LOCATION_INACTIVE
    world.ghl.answer = None  # reactivated: the same refresh token works again
    assert await world.vault.token(KEY)
    status = world.vault.status(KEY)
    assert status is not None and status.status == "active"


async def test_server_error_keeps_everything(world: World) -> None:
    world.connect(expires_in=-10)
    before = _raw_row(world.engine)
    world.ghl.answer = (502, {"message": "bad gateway"})
    with pytest.raises(Exception, match="502"):
        await world.vault.token(KEY)
    assert _raw_row(world.engine)._mapping == before._mapping


async def test_private_tokens_are_never_refreshed(world: World) -> None:
    world.vault.save_private("loc_pit", Secret("pit-token-abcdefghij"))
    assert await world.vault.token("loc_pit") == Secret("pit-token-abcdefghij")
    rejected = Secret("pit-token-abcdefghij")
    assert await world.vault.after_unauthorized("loc_pit", rejected) is None
    assert world.ghl.calls == []


async def test_unknown_key_asks_for_login(world: World) -> None:
    with pytest.raises(ReconnectNeededError, match="auth login"):
        await world.vault.token("loc_nope")


async def test_no_token_in_logs_reprs_or_errors(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    access, refresh = world.connect(expires_in=-10)
    fresh = await world.vault.token(KEY)
    world.ghl.valid_refresh.clear()
    world.clock.advance(86399)
    with pytest.raises(ReconnectNeededError) as info:
        await world.vault.token(KEY)
    shown = " ".join(
        [caplog.text, repr(world.vault), repr(world.vault.status(KEY)), str(info.value)]
    )
    shown += " ".join([repr(info.value), repr(world.vault.connections()), repr(fresh), str(fresh)])
    assert "refreshed GHL token for loc_1" in caplog.text  # the logs do talk about it
    for secret in (access, refresh, fresh.reveal(), CLIENT_SECRET):
        assert secret not in shown


async def test_many_connections_refresh_at_once(world: World) -> None:
    keys = [f"loc_{n}" for n in range(12)]
    for key in keys:
        access, refresh = world.ghl.issue()
        world.vault.save(key, TokenSet(Secret(access), Secret(refresh), world.clock.now() - 1))
    results = await asyncio.gather(*(world.vault.token(key) for key in keys * 3))
    assert len(world.ghl.calls) == len(keys)
    assert results[: len(keys)] == results[len(keys) : 2 * len(keys)]
    assert len(set(results)) == len(keys)


async def test_without_an_oauth_app_nothing_is_refreshed(world: World) -> None:
    access, _ = world.connect(expires_in=60)  # inside the margin, not yet expired
    readonly = TokenVault(world.engine, world.cipher, None, world.clock)
    assert await readonly.token(KEY) == Secret(access)
    assert await readonly.after_unauthorized(KEY, Secret(access)) is None
    world.clock.advance(61)
    with pytest.raises(ReconnectNeededError, match="cannot be refreshed"):
        await readonly.token(KEY)
    assert world.ghl.calls == []


def _replace_access_in_store(world: World, access: str) -> None:
    """What another process's refresh leaves in the row: a new access token."""
    with world.engine.begin() as conn:
        conn.execute(
            ghl_connections.update().values(access_token=world.cipher.encrypt(Secret(access)))
        )


async def test_token_reads_the_row_once_per_few_seconds_not_per_request(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    access, _ = world.connect(expires_in=3600)
    reads: list[str] = []
    read = world.vault._read

    def counted(key: str) -> object:
        reads.append(key)
        return read(key)

    monkeypatch.setattr(world.vault, "_read", counted)
    assert {await world.vault.token(KEY) for _ in range(50)} == {Secret(access)}
    assert reads == [KEY]
    monkeypatch.setattr(world.vault, "_read_cache_s", 0.0)  # the kept read has aged
    assert await world.vault.token(KEY) == Secret(access)
    assert reads == [KEY, KEY]
    assert vault_module.READ_CACHE_S == 5.0


async def test_a_token_another_process_rotated_is_found_at_the_first_401(world: World) -> None:
    old, _ = world.connect(expires_in=3600)
    assert await world.vault.token(KEY) == Secret(old)
    _replace_access_in_store(world, "rotated-elsewhere")
    assert await world.vault.token(KEY) == Secret(old)  # kept: at most READ_CACHE_S
    fresh = await world.vault.after_unauthorized(KEY, Secret(old))  # GHL refused the old one
    assert fresh == Secret("rotated-elsewhere") and world.ghl.calls == []
    assert await world.vault.token(KEY) == Secret("rotated-elsewhere")


async def test_what_this_vault_writes_is_read_at_once(world: World) -> None:
    world.connect(expires_in=3600)
    await world.vault.token(KEY)
    world.vault.save_private(KEY, Secret("pit-new"))
    assert await world.vault.token(KEY) == Secret("pit-new")
    world.vault.remove(KEY)
    with pytest.raises(ReconnectNeededError):
        await world.vault.token(KEY)
