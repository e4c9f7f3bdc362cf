"""Screenshots of every console page for docs/console.md, from a real run.

Runs the demo pipeline (sandbox GHL, receiver, worker) with a dozen customers, parks one
contact GHL refuses as a dead letter, adds a second location, then serves the console over
that store and photographs each page in headless chromium (Debian's, via playwright): first
the setup page (no password yet), then the sign-in page and, signed in, every page.

    .venv/bin/python bench/console_screenshots.py [--out docs/console] [--only setup.png ...]

`--only` writes just the named files (the run and the clicks are the same).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from ghlsync._secret import Secret
from ghlsync.console._password import set_password
from ghlsync.demo._pipeline import PipelineOptions, run_pipeline
from ghlsync.engine import Delivery, accept, claim, dead_letter
from ghlsync.engine.locations._directory import LocationDirectory
from ghlsync.engine.locations._rows import register_location
from ghlsync.ghl._crypto import TokenCipher, generate_key
from ghlsync.mapping import AppConfig
from ghlsync.sandbox import SandboxServer
from ghlsync.server._app import create_app
from ghlsync.server._thread import serve_in_thread
from ghlsync.store import create_engine
from ghlsync.store._engine import begin_immediate

PASSWORD = "screenshots only"  # a throwaway store on loopback
CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PHONE_WIDTH, PHONE_HEIGHT = 360, 740  # the narrowest phone docs/console.md promises
SHOTS = [  # file, path, what to do on the page first
    ("overview.png", "/", None),
    ("connections.png", "/connections", None),
    ("dead-letters.png", "/dead-letters", "open_payload"),
    ("tester.png", "/tester?event=appointment.scheduled", "run_tester"),
    ("tester-sandbox.png", "/tester?event=customer.created", "send_to_sandbox"),
    ("records.png", "/records?q={customer}", None),
    ("records-by-name.png", "/records?q={first_name}", None),
    ("activity.png", "/activity", None),
]


def _config(database_url: str, sandbox: SandboxServer) -> AppConfig:
    raw = AppConfig.default().model_dump(mode="python", by_alias=True)
    raw["database_url"] = database_url
    raw["environment"] = "production"
    sandbox_ghl = {"base_url": sandbox.url, "location_id": sandbox.location_id}
    raw["environments"] = {"production": {}, "sandbox": {"ghl": sandbox_ghl}}
    raw["ghl"] = {
        "base_url": sandbox.url,  # where Connect GHL trades its code (GHL's API in production)
        "location_id": SandboxServer.location_id,
        "calendar_id": SandboxServer.calendar_id,
    }
    raw["writeback"] = {
        "actions": {
            "create_lead": {"url": "https://hooks.zapier.com/hooks/catch/1234567/abcdef/"},
            "update_appointment": {"url": "https://hooks.zapier.com/hooks/catch/1234567/ghijkl/"},
        }
    }
    config = AppConfig.model_validate(raw)
    environments = dict(config.environments)
    sandbox_env = environments["sandbox"]
    assert sandbox_env.ghl is not None
    token = sandbox_env.ghl.model_copy(update={"token": Secret(sandbox.token)})
    environments["sandbox"] = sandbox_env.model_copy(update={"ghl": token})
    config = config.model_copy(update={"environments": environments})
    ghl = config.ghl.model_copy(update={"token": Secret("pit-screenshots")})
    dripjobs = config.dripjobs.model_copy(update={"secret": Secret("demo-webhook-secret")})
    return config.model_copy(update={"ghl": ghl, "dripjobs": dripjobs})


def _park_one(engine: sa.Engine, location: str) -> None:
    """A contact GHL refused for good, as the worker parks it."""
    now = time.time()
    item = Delivery(
        connection_id="default",
        location_id=location,
        event="customer.updated",
        delivery_id="dl-shot-1",
        payload={"customer_id": "cust-991", "first_name": "Kai", "email": "kai@@example"},
        entity_type="contact",
        source_id="cust-991",
        source_updated_at=now,
        received_at=now,
    )
    with begin_immediate(engine) as conn:
        accept(conn, item)
    for claimed in claim(engine, "screenshots", [location], 10, 30):
        dead_letter(
            engine, claimed, "GHL answered 422: email must be an email", "UnprocessableError"
        )


def _act(page: Any, action: str | None) -> None:
    if action == "open_payload":
        page.get_by_text("Reason and payload").first.click()
    elif action == "run_tester":
        page.get_by_role("button", name="Show the GHL calls").click()
        page.get_by_test_id("tester-result").wait_for()
    elif action == "send_to_sandbox":
        page.get_by_role("button", name="Send to sandbox").click()
        page.get_by_test_id("sandbox-result").wait_for()


def _synced_customer(engine: sa.Engine) -> tuple[str, str]:
    """A DripJobs customer id the demo synced, and its first name (for the Records page)."""
    import json

    from ghlsync.store._tables_sync import sync_state

    s = sync_state.c
    query = (
        sa.select(s.source_id, s.snapshot)
        .where(s.entity_type == "contact", s.side == "ghl")
        .order_by(s.source_id)
    )
    with engine.connect() as conn:
        for source_id, snapshot in conn.execute(query):
            first = json.loads(snapshot or "{}").get("body", {}).get("firstName")
            if first:
                return str(source_id), str(first)
    raise SystemExit("the demo synced no contact with a first name")


def _shoot(
    url: str,
    out: Path,
    customer: tuple[str, str],
    set_admin_password: Callable[[], None],
    only: Collection[str] = (),
) -> None:
    from playwright.sync_api import sync_playwright

    def shot(page: Any, name: str, **options: Any) -> None:
        if not only or name in only:
            page.screenshot(path=out / name, **options)

    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = browser.new_context(viewport={"width": 1200, "height": 900})
        page = context.new_page()
        page.goto(f"{url}/console/")
        page.get_by_role("heading", name="Set an admin password first").wait_for()
        shot(page, "setup.png")
        set_admin_password()
        page.goto(f"{url}/console/login")
        shot(page, "login.png")
        page.get_by_label("Admin password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.get_by_role("heading", name="Overview").wait_for()
        for name, path, action in SHOTS:
            page.goto(f"{url}/console{path.format(customer=customer[0], first_name=customer[1])}")
            _act(page, action)
            shot(page, name, full_page=name != "activity.png")
        os.environ.pop("GHLSYNC_PUBLIC_URL")  # GHL must send the browser back to this server
        page.goto(f"{url}/console/connections")
        page.get_by_role("button", name="Connect GHL for Second office (Denver)").click()
        page.get_by_role("heading", name="GHL connected").wait_for()  # the sandbox consented
        shot(page, "connected.png")
        phone = browser.new_context(
            viewport={"width": PHONE_WIDTH, "height": PHONE_HEIGHT},
            storage_state=context.storage_state(),
        )
        small = phone.new_page()
        small.goto(f"{url}/console/")
        shot(small, "overview-phone.png", full_page=True)
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/console"))
    parser.add_argument("--only", nargs="+", default=[], metavar="FILE", help="e.g. setup.png")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ["GHLSYNC_PUBLIC_URL"] = "https://sync.example.com"  # the URLs a Zap would use
    summary = asyncio.run(run_pipeline(12, options=PipelineOptions(keep=True)))
    database_url = summary.database_url
    sandbox = SandboxServer().start()  # the sandbox environment: Send to sandbox, Connect GHL
    os.environ.update(
        GHLSYNC_GHL_CLIENT_ID="sandbox-client",
        GHLSYNC_GHL_CLIENT_SECRET="sandbox-secret",
        GHLSYNC_GHL_MARKETPLACE_URL=sandbox.url,
    )
    engine = create_engine(database_url)
    try:
        location = SandboxServer.location_id
        _park_one(engine, location)
        cipher = TokenCipher([generate_key()])
        register_location(
            engine, cipher, "ve9EPM428h8vShlRW1KT", now=time.time(), name="Second office (Denver)"
        )
        config = _config(database_url, sandbox)
        app = create_app(
            engine=engine, config=config, locations=LocationDirectory(engine, config, cipher)
        )
        with serve_in_thread(app) as url:  # no password yet: the setup page comes first
            customer = _synced_customer(engine)
            _shoot(
                url,
                args.out,
                customer,
                lambda: set_password(engine, PASSWORD, now=time.time()),
                args.only,
            )
    finally:
        engine.dispose()
        sandbox.stop()
        folder = Path(database_url.removeprefix("sqlite:///")).parent
        shutil.rmtree(folder, ignore_errors=True)
    for png in sorted(args.out.glob("*.png")):
        if not args.only or png.name in args.only:
            print(f"{png} ({png.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
