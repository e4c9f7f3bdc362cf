"""Where a connection's GHL API version comes from: the config, its env var, the location row."""

from __future__ import annotations

import json
from pathlib import Path

import sqlalchemy as sa

from ghlsync.engine.locations._rows import get_location
from ghlsync.mapping import load_config
from tests.test_locations_cli import Cli, cli, key, store  # noqa: F401 - fixtures
from tests.test_mapping_config import problems


def test_config_default_env_override_and_bad_value(tmp_path: Path) -> None:
    path = tmp_path / "ghlsync.yaml"
    path.write_text("ghl: {location_id: loc_1}\n")
    assert load_config(path, environ={}).ghl.api_version == "v2"
    env = {"GHLSYNC_GHL_API_VERSION": "v3"}
    assert load_config(path, environ=env).ghl.api_version == "v3"
    path.write_text("ghl: {api_version: v4}\n")
    [problem] = problems(path)
    assert problem.endswith("ghl.api_version: 'v4' is not one of v2, v3")


def test_locations_add_stores_the_api_version_and_show_prints_it(
    cli: Cli,  # noqa: F811
    store: sa.Engine,  # noqa: F811
) -> None:
    added = cli("add", "loc_v3", "--token", "pit-v3-0123456789", "--api-version", "v3")
    assert added.exit_code == 0, added.output
    row = get_location(store, "loc_v3")
    assert row is not None and row.api_version == "v3"
    assert "GHL API:     v3" in cli("show", "loc_v3").output
    plain = cli("add", "loc_v2", "--token", "pit-v2-0123456789")
    assert plain.exit_code == 0, plain.output
    [entry] = [e for e in json.loads(cli("list", "--json").output) if e["location_id"] == "loc_v2"]
    assert entry["api_version"] == "v2"  # none stored: the config's


def test_locations_add_refuses_an_unknown_api_version(cli: Cli) -> None:  # noqa: F811
    result = cli("add", "loc_x", "--api-version", "v9")
    assert result.exit_code != 0
    assert "--api-version is v2 or v3, not 'v9'" in result.output
