"""Locations and DripJobs connections in the store, and the directory the worker asks."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from ghlsync._clock import FakeClock
from ghlsync.engine.locations._directory import (
    LocationDirectory,
    LocationGate,
    LocationUninstalledError,
)
from ghlsync.engine.locations._override import apply_override
from ghlsync.engine.locations._rows import (
    get_connection,
    list_connections,
    list_locations,
    register_location,
    rotate_secret,
    set_location_options,
    uninstall_location,
)
from ghlsync.ghl import MemoryRateLimiter
from ghlsync.ghl._crypto import TokenCipher
from ghlsync.mapping import AppConfig, ConfigError, Mapper
from ghlsync.store._tables_locations import dripjobs_connections
from tests._locations_kit import OVERRIDE_B, base_config


def test_register_creates_a_location_with_one_connection_and_a_secret_shown_once(
    locations_store: sa.Engine, loc_cipher: TokenCipher
) -> None:
    first = register_location(locations_store, loc_cipher, "loc_b", now=10.0, company_id="co")
    again = register_location(locations_store, loc_cipher, "loc_b", now=20.0)

    assert first.new_secret is not None and again.new_secret is None
    assert again.connection_id == first.connection_id
    assert len(first.connection_id) >= 24  # unguessable slug
    [row] = list_locations(locations_store)
    assert (row.location_id, row.company_id, row.status, row.installed_at) == (
        "loc_b",
        "co",
        "active",
        10.0,
    )
    stored = get_connection(locations_store, loc_cipher, first.connection_id)
    assert stored is not None and stored.secret == first.new_secret


def test_the_secret_is_stored_encrypted(
    locations_store: sa.Engine, loc_cipher: TokenCipher
) -> None:
    made = register_location(locations_store, loc_cipher, "loc_b", now=1.0)
    assert made.new_secret is not None
    with locations_store.connect() as conn:
        raw = conn.execute(sa.select(dripjobs_connections.c.secret)).scalar_one()
    assert made.new_secret.reveal().encode() not in bytes(raw)


def test_uninstall_revokes_and_reinstall_gets_a_new_connection_keeping_options(
    locations_store: sa.Engine, loc_cipher: TokenCipher
) -> None:
    old = register_location(locations_store, loc_cipher, "loc_b", now=1.0)
    set_location_options(locations_store, "loc_b", now=2.0, calendar_id="cal_b")

    assert uninstall_location(locations_store, "loc_b", now=3.0)
    assert not uninstall_location(locations_store, "loc_b", now=4.0)  # already uninstalled
    revoked = get_connection(locations_store, loc_cipher, old.connection_id)
    assert revoked is not None and revoked.revoked

    new = register_location(locations_store, loc_cipher, "loc_b", now=5.0)
    assert new.new_secret is not None and new.connection_id != old.connection_id
    assert (new.location.status, new.location.calendar_id, new.location.installed_at) == (
        "active",
        "cal_b",
        5.0,
    )
    states = [c.revoked for c in list_connections(locations_store, loc_cipher, "loc_b")]
    assert states == [True, False]


def test_rotate_secret_keeps_the_url_and_refuses_revoked_connections(
    locations_store: sa.Engine, loc_cipher: TokenCipher
) -> None:
    made = register_location(locations_store, loc_cipher, "loc_b", now=1.0)
    fresh = rotate_secret(locations_store, loc_cipher, made.connection_id)
    stored = get_connection(locations_store, loc_cipher, made.connection_id)
    assert fresh is not None and stored is not None
    assert stored.secret == fresh and fresh != made.new_secret

    uninstall_location(locations_store, "loc_b", now=2.0)
    assert rotate_secret(locations_store, loc_cipher, made.connection_id) is None


def test_directory_keeps_single_location_mode_without_any_row(
    locations_store: sa.Engine,
) -> None:
    config = base_config(location_id="loc_a", token="pit-a", calendar_id="cal_a")
    directory = LocationDirectory(locations_store, config)

    home = directory.get("loc_a")
    other = directory.get("loc_x")
    assert (home.calendar_id, home.active, home.config) == ("cal_a", True, config)
    assert (other.calendar_id, other.mapper) == (None, home.mapper)
    assert directory.connection("nope") is None


def test_mapping_override_applies_to_its_location_only(
    locations_store: sa.Engine, loc_cipher: TokenCipher
) -> None:
    config = base_config(location_id="loc_a", token="pit-a")
    for location in ("loc_a", "loc_b"):
        register_location(locations_store, loc_cipher, location, now=1.0)
    set_location_options(
        locations_store, "loc_b", now=2.0, mapping_override=OVERRIDE_B, calendar_id="cal_b"
    )
    directory = LocationDirectory(locations_store, config, loc_cipher)
    a, b = directory.get("loc_a"), directory.get("loc_b")

    payload = {"customer_id": "c1", "first_name": "Ann"}
    tags_a = a.mapper.map("customer.created", payload).primary.tags_add
    tags_b = b.mapper.map("customer.created", payload).primary.tags_add
    assert "agency-b" in tags_b and "agency-b" not in tags_a
    assert b.mapper.knows("job.won") and not a.mapper.knows("job.won")
    assert b.calendar_id == "cal_b"
    assert b.config.ghl == config.ghl  # where to write stays the base config's


def test_directory_sees_an_uninstall_after_invalidate_or_refresh(
    locations_store: sa.Engine, loc_cipher: TokenCipher
) -> None:
    clock = FakeClock()
    directory = LocationDirectory(
        locations_store, base_config(), loc_cipher, clock=clock, refresh_seconds=5
    )
    made = register_location(locations_store, loc_cipher, "loc_b", now=1.0)
    assert directory.get("loc_b").active
    assert directory.connection(made.connection_id) is not None

    uninstall_location(locations_store, "loc_b", now=2.0)  # as another process would
    assert directory.get("loc_b").active  # cached
    clock.advance(6)
    assert not directory.get("loc_b").active
    revoked = directory.connection(made.connection_id)
    assert revoked is not None and revoked.revoked


async def test_active_raises_for_an_uninstalled_location(
    locations_store: sa.Engine, loc_cipher: TokenCipher
) -> None:
    directory = LocationDirectory(locations_store, base_config(), loc_cipher)
    register_location(locations_store, loc_cipher, "loc_b", now=1.0)
    assert (await directory.active("loc_b")).location_id == "loc_b"

    uninstall_location(locations_store, "loc_b", now=2.0)
    directory.invalidate("loc_b")
    with pytest.raises(LocationUninstalledError, match="loc_b was uninstalled"):
        await directory.active("loc_b")


def test_override_field_rules_come_first_and_the_base_rules_still_apply() -> None:
    text = "fields:\n  contact:\n    - {from: client_email, to: email, transform: email}\n"
    mapper = Mapper(apply_override(AppConfig.default(), text))
    payload = {
        "customer_id": "c1",
        "client_email": "B@X.COM",
        "email": "a@x.com",
        "first_name": "Bo",
    }

    body = mapper.map("customer.created", payload).primary.body

    assert (body["email"], body["firstName"]) == ("b@x.com", "Bo")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ghl: {token: x}\n", "ghl: cannot be overridden per location"),
        ("events: {x: {entity: job, id: a}}\n", "events.x.entity: 'job' is not one of"),
        ("tags: [{tag: ok}]\nusers: [1]\n", "users"),
        ("tags: [\n", "invalid YAML"),
        ("fields: {contact: [{from: a, to: emial}]}\n", "fields.contact[0].to: 'emial'"),
    ],
)
def test_invalid_overrides_are_reported_with_their_key(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)) as raised:
        apply_override(AppConfig.default(), text, "override of loc_b")
    assert str(raised.value).startswith("override of loc_b")


async def test_the_gate_gives_no_budget_to_uninstalled_locations_only(
    locations_store: sa.Engine, loc_cipher: TokenCipher
) -> None:
    directory = LocationDirectory(locations_store, base_config(), loc_cipher)
    for location in ("loc_b", "loc_c", "loc_d"):
        register_location(locations_store, loc_cipher, location, now=1.0)
    uninstall_location(locations_store, "loc_b", now=2.0)
    set_location_options(locations_store, "loc_d", now=2.0, mapping_override="users: [1]\n")
    gate = LocationGate(MemoryRateLimiter(), directory)

    answers = [await gate.has_budget(loc) for loc in ("loc_b", "loc_c", "loc_d", "loc_new")]

    # loc_d's bad override is reported by the worker on its items, so it is still claimed.
    assert answers == [False, True, True, True]
