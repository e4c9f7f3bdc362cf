"""Tokens per location: the configured one for single-location mode, the vault for the rest."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from ghlsync._secret import Secret
from ghlsync.engine.locations._tokens import LocationTokens
from ghlsync.ghl._crypto import TokenCipher
from ghlsync.ghl._errors import ReconnectNeededError
from ghlsync.ghl._vault import TokenVault
from tests._locations_kit import base_config


async def test_configured_token_first_then_the_vault(
    locations_store: sa.Engine, loc_cipher: TokenCipher
) -> None:
    vault = TokenVault(locations_store, loc_cipher)
    vault.save_private("loc_b", Secret("pit-b-from-the-vault"))
    vault.save_private("loc_a", Secret("pit-a-in-the-vault-too"))
    tokens = LocationTokens.from_config(base_config(location_id="loc_a", token="pit-a"), vault)

    assert (await tokens.token("loc_a")).reveal() == "pit-a"
    assert (await tokens.token("loc_b")).reveal() == "pit-b-from-the-vault"
    assert await tokens.after_unauthorized("loc_a", Secret("pit-a")) is None
    with pytest.raises(ReconnectNeededError, match="install the app on location loc_c"):
        await tokens.token("loc_c")


async def test_without_a_vault_only_the_configured_location_has_a_token() -> None:
    tokens = LocationTokens.from_config(base_config(location_id="loc_a", token="pit-a"))
    assert (await tokens.token("loc_a")).reveal() == "pit-a"
    with pytest.raises(ReconnectNeededError, match="loc_b"):
        await tokens.token("loc_b")
    assert "pit-a" not in repr(tokens)
