"""Cross-component fixtures: the cloud API as a real process, a signed-up person, fake providers."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from demo_marts import DEMO_PASSWORD, BuiltDemo, build_demo, drop_demo

from cloud_support import CloudProcess, DashboardPage, Person, launch_chromium
from halton_meter.testing.fake_providers import fake_providers


@pytest.fixture
def cloud(postgres_url: str, warehouse, server_dir: Path) -> Iterator[CloudProcess]:
    process = CloudProcess.on_stores(
        server_dir, database_url=postgres_url, warehouse_url=warehouse.url, prefix=warehouse.prefix
    )
    process.start()
    yield process
    process.stop()


@pytest.fixture
def person(cloud: CloudProcess) -> Iterator[Person]:
    someone = Person(cloud.url, f"vera-{secrets.token_hex(3)}@example.com").sign_up("Acme Co")
    yield someone
    someone.client.close()


@pytest.fixture(scope="session")
def providers(suite_dirs):
    """Fake Anthropic/OpenAI/Gemini/xAI servers on 127.0.0.1 speaking each documented wire format."""
    with suite_dirs.own("providers") as pki, fake_providers(pki) as servers:
        yield servers


@pytest.fixture(scope="session")
def built_demo(warehouse_server: str, postgres_server: str):
    """The demo workspace (30k requests over 90 days, ending this hour) with its marts built by Dagster."""
    built = build_demo(warehouse_server, postgres_server)
    yield built
    drop_demo(built, postgres_server)


@pytest.fixture(scope="session")
def demo_cloud(built_demo: BuiltDemo, suite_dirs) -> Iterator[CloudProcess]:
    """The API as a real process over the built demo's stores (shared by the dashboard tests: read-mostly)."""
    home = suite_dirs.make("demo-cloud")
    process = CloudProcess.on_stores(
        home,
        database_url=built_demo.database_url,
        warehouse_url=built_demo.warehouse_url,
        prefix=built_demo.prefix,
        # The demo's meters are pretend: they reported once, when the demo was built, and never again.
        DEVICE_SILENT_AFTER_SECONDS=str(7 * 86400),
    )
    process.start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def chromium():
    """Debian's Chromium through Playwright's sync API, per module: that API keeps an event loop running in
    the thread while it is open, which would refuse every later `asyncio.run` of the session."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        yield browser
        browser.close()


@pytest.fixture
def demo_page(chromium, demo_cloud: CloudProcess, built_demo: BuiltDemo) -> Iterator[DashboardPage]:
    """A signed-in browser tab on the demo workspace (the demo's owner), failing the test on console errors."""
    context = chromium.new_context(viewport={"width": 1440, "height": 900}, base_url=demo_cloud.url)
    page = DashboardPage(context.new_page(), built_demo)
    page.sign_in(built_demo.owner_email, DEMO_PASSWORD)
    yield page
    context.close()
    assert page.errors == [], f"console errors: {page.errors}"
