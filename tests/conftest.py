"""Shared fixtures. Each area keeps its fixtures in its own `_*.py` module, imported here."""

from tests._browser import browser_page, chromium_browser  # noqa: F401
from tests._console_kit import console_site, console_store  # noqa: F401
from tests._db import database_url, postgres_url, sqlite_url  # noqa: F401
from tests._engine_flows_kit import flow, flows_store  # noqa: F401
from tests._engine_kit import engine_clock, engine_store  # noqa: F401
from tests._locations_kit import loc_cipher, locations_store  # noqa: F401
from tests._sandbox import sandbox, sandbox_asgi  # noqa: F401
from tests._specs import ghl_spec_dir, ghl_v3_spec_dir  # noqa: F401
from tests._twoway_kit import tw  # noqa: F401
