"""Helpers for the multi-location tests: a migrated store, a cipher, configs with overrides."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from ghlsync.ghl._crypto import TokenCipher, generate_key
from ghlsync.mapping import AppConfig
from ghlsync.store import create_engine, migrate
from ghlsync.store._tables_engine import work_items

# A location's override: one extra tag on every contact, and an event only it knows.
OVERRIDE_B = """
tags:
  - {tag: dripjobs}
  - {tag: agency-b}
events:
  job.won:
    entity: contact
    id: customer_id
    tags: [{tag: "job:won"}]
"""


@pytest.fixture
def locations_store(database_url: str) -> Iterator[sa.Engine]:
    """A migrated store (SQLite file and PostgreSQL)."""
    engine = create_engine(database_url)
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def loc_cipher() -> TokenCipher:
    """A cipher with a fresh key (never the user's key file)."""
    return TokenCipher([generate_key()])


def base_config(**ghl: Any) -> AppConfig:
    """The preset, with `ghl:` settings and a DripJobs secret for the default connection."""
    raw = AppConfig.default().model_dump(mode="python", by_alias=True)
    raw["ghl"] = {"base_url": "http://127.0.0.1:1", **ghl}
    raw["dripjobs"] = {"secret": "default-secret-value"}
    raw["worker"] = {"poll_interval": 0.05, "concurrency": 4}
    return AppConfig.model_validate(raw)


def queued(engine: sa.Engine) -> list[tuple[str, str, str]]:
    """(location, entity type, source id) of every work row, sorted."""
    cols = work_items.c
    with engine.connect() as conn:
        rows = conn.execute(sa.select(cols.location_id, cols.entity_type, cols.source_id)).all()
    return sorted((r[0], r[1], r[2]) for r in rows)
