"""Shared fixtures. Each area keeps its fixtures in its own `_*.py` module, imported here."""

from tests._db import database_url, postgres_url, sqlite_url  # noqa: F401
from tests._specs import ghl_spec_dir  # noqa: F401
