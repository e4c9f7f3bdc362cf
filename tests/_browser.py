"""A real browser for the console tests: Debian's chromium driven by Python playwright.

Without chromium (or playwright) the browser tests skip with the reason, except in CI:
`.ci/run` installs chromium and sets GHLSYNC_REQUIRE_BROWSER=1, and then they fail instead.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

CHROMIUM = os.environ.get("GHLSYNC_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _missing() -> str | None:
    if shutil.which(CHROMIUM) is None:
        return f"no chromium at {CHROMIUM} (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "python playwright is not installed (pip install -e '.[dev]')"
    return None


def require_browser() -> None:
    """Skip (or fail, with GHLSYNC_REQUIRE_BROWSER=1) when no browser can run."""
    reason = _missing()
    if reason is None:
        return
    if os.environ.get("GHLSYNC_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason} (GHLSYNC_REQUIRE_BROWSER=1, so this must not skip)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def chromium_browser() -> Iterator[Any]:
    """One headless chromium per test module."""
    require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def browser_page(chromium_browser: Any) -> Iterator[Any]:
    """A fresh browser context (no cookies) and page; dialogs (confirm) are accepted."""
    context = chromium_browser.new_context(viewport={"width": 1100, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.on("dialog", lambda dialog: dialog.accept())
    try:
        yield page
    finally:
        context.close()
