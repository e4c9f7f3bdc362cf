"""Per-location DripJobs connections over real HTTP: own URL, own secret, own queue."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx2
import pytest
import sqlalchemy as sa

from ghlsync.engine.locations._directory import LocationDirectory
from ghlsync.engine.locations._rows import (
    Registered,
    register_location,
    rotate_secret,
    set_location_options,
    uninstall_location,
)
from ghlsync.ghl._crypto import TokenCipher, generate_key
from ghlsync.server import create_app, serve_in_thread
from tests._locations_kit import OVERRIDE_B, base_config, queued


@dataclass
class Agency:
    """A receiver on loopback with the default location A and two stored locations B, C."""

    http: httpx2.Client
    directory: LocationDirectory
    b: Registered
    c: Registered

    def post(self, path: str, secret: str, **body: str) -> httpx2.Response:
        headers = {"Authorization": f"Bearer {secret}"}
        return self.http.post(path, json=body, headers=headers)


@pytest.fixture
def agency(locations_store: sa.Engine, loc_cipher: TokenCipher) -> Iterator[Agency]:
    config = base_config(location_id="loc_a", token="pit-a")
    b = register_location(locations_store, loc_cipher, "loc_b", now=1.0)
    c = register_location(locations_store, loc_cipher, "loc_c", now=1.0)
    set_location_options(locations_store, "loc_b", now=2.0, mapping_override=OVERRIDE_B)
    directory = LocationDirectory(locations_store, config, loc_cipher)
    app = create_app(engine=locations_store, config=config, locations=directory)
    with serve_in_thread(app) as url, httpx2.Client(base_url=url) as http:
        yield Agency(http, directory, b, c)


def _secret(made: Registered) -> str:
    assert made.new_secret is not None
    return made.new_secret.reveal()


def test_each_connection_lands_in_its_own_location_queue(
    agency: Agency, locations_store: sa.Engine
) -> None:
    b, c = agency.b, agency.c
    to_b = agency.post(
        f"/hooks/dripjobs/{b.connection_id}/customer.created", _secret(b), customer_id="c1"
    )
    to_c = agency.post(
        f"/hooks/dripjobs/{c.connection_id}/customer.created", _secret(c), customer_id="c1"
    )
    to_a = agency.post("/hooks/dripjobs/customer.created", "default-secret-value", customer_id="c1")

    assert [to_b.status_code, to_c.status_code, to_a.status_code] == [202, 202, 202]
    assert queued(locations_store) == [
        ("loc_a", "contact", "c1"),
        ("loc_b", "contact", "c1"),
        ("loc_c", "contact", "c1"),
    ]


def test_a_connection_accepts_only_its_own_secret(
    agency: Agency, locations_store: sa.Engine
) -> None:
    b, c = agency.b, agency.c
    wrong = agency.post(
        f"/hooks/dripjobs/{b.connection_id}/customer.created", _secret(c), customer_id="c1"
    )
    default = agency.post(
        f"/hooks/dripjobs/{b.connection_id}/customer.created",
        "default-secret-value",
        customer_id="c1",
    )

    assert (wrong.status_code, wrong.json()["error"]) == (401, "bad_credentials")
    assert default.status_code == 401
    assert queued(locations_store) == []


def test_unknown_connection_is_answered_like_a_wrong_secret(agency: Agency) -> None:
    # Before authentication nothing tells which connection ids exist (issue 8, item 7).
    answer = agency.post("/hooks/dripjobs/dj_nope/customer.created", "x", customer_id="c1")
    assert (answer.status_code, answer.json()["error"]) == (401, "bad_credentials")


def test_revoked_connection_is_refused_with_a_clear_message(
    agency: Agency, locations_store: sa.Engine
) -> None:
    b = agency.b
    uninstall_location(locations_store, "loc_b", now=3.0)
    agency.directory.invalidate("loc_b")

    answer = agency.post(
        f"/hooks/dripjobs/{b.connection_id}/customer.created", _secret(b), customer_id="c1"
    )
    assert answer.status_code == 401
    assert answer.json()["error"] == "connection_revoked"
    assert "loc_b was uninstalled" in answer.json()["message"]
    assert queued(locations_store) == []


def test_a_rotated_secret_replaces_the_old_one(
    agency: Agency, locations_store: sa.Engine, loc_cipher: TokenCipher
) -> None:
    b = agency.b
    fresh = rotate_secret(locations_store, loc_cipher, b.connection_id)
    assert fresh is not None
    agency.directory.invalidate("loc_b")
    path = f"/hooks/dripjobs/{b.connection_id}/customer.created"

    assert agency.post(path, _secret(b), customer_id="c1").status_code == 401
    assert agency.post(path, fresh.reveal(), customer_id="c1").status_code == 202


def test_the_mapping_override_decides_the_events_of_its_location_only(
    agency: Agency, locations_store: sa.Engine
) -> None:
    b, c = agency.b, agency.c
    to_b = agency.post(f"/hooks/dripjobs/{b.connection_id}/job.won", _secret(b), customer_id="c9")
    to_c = agency.post(f"/hooks/dripjobs/{c.connection_id}/job.won", _secret(c), customer_id="c9")

    assert to_b.status_code == 202
    assert (to_c.status_code, to_c.json()["error"]) == (404, "unknown_event")
    assert queued(locations_store) == [("loc_b", "contact", "c9")]


def test_an_override_the_base_config_no_longer_accepts_is_answered_503(
    agency: Agency, locations_store: sa.Engine
) -> None:
    # Stored directly: `locations add` would have refused it.
    set_location_options(
        locations_store, "loc_c", now=3.0, mapping_override="events: {x: {entity: job}}\n"
    )
    agency.directory.invalidate("loc_c")
    c = agency.c
    answer = agency.post(
        f"/hooks/dripjobs/{c.connection_id}/customer.created", _secret(c), customer_id="c1"
    )
    assert (answer.status_code, answer.json()["error"]) == (503, "not_configured")
    assert "events.x.entity" in answer.json()["message"]
    assert queued(locations_store) == []


def test_a_secret_sealed_with_another_key_is_answered_503(
    locations_store: sa.Engine, loc_cipher: TokenCipher
) -> None:
    made = register_location(locations_store, loc_cipher, "loc_b", now=1.0)
    config = base_config()
    other_key = LocationDirectory(locations_store, config, TokenCipher([generate_key()]))
    app = create_app(engine=locations_store, config=config, locations=other_key)
    with serve_in_thread(app) as url, httpx2.Client(base_url=url) as http:
        answer = http.post(
            f"/hooks/dripjobs/{made.connection_id}/customer.created",
            json={"customer_id": "c1"},
            headers={"Authorization": f"Bearer {_secret(made)}"},
        )
    assert (answer.status_code, answer.json()["error"]) == (503, "not_configured")
    # Unauthenticated (the secret cannot be opened): no key or location named, the log has it.
    assert "server's log" in answer.json()["message"]
    assert "loc_b" not in answer.json()["message"]
