"""Cross-component test support: the cloud API and the meter as real processes on loopback.

The API runs as `halton-cloud serve` (the production command) against the session's real PostgreSQL and
embedded warehouse (throwaway databases per test); each meter is `halton-meter start --foreground` with its
own home directory, pointed at fake providers. A person is an httpx client with a cookie jar that signs up
through the real pages.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx

from halton_meter.testing.processes import free_port, wait_for

CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')
PASSWORD = "correct horse battery staple"


def first_day(days: int = 30) -> date:
    """The first day of the rail's last `days` days (today included)."""
    return datetime.now(UTC).date() - timedelta(days=days - 1)


@dataclass
class CloudProcess:
    """The API in its own process; `stop()` and `start()` simulate an outage on the same port."""

    env: dict[str, str]
    port: int
    log_path: Path
    process: subprocess.Popen | None = None

    @classmethod
    def on_stores(
        cls, home: Path, *, database_url: str, warehouse_url: str, prefix: str, **settings: str
    ) -> CloudProcess:
        """The API of a development cloud on a free port over these stores, its data and log under `home`;
        `settings` are more `HALTON_*` variables (without the prefix, e.g. `HTTP_HEADER_TIMEOUT_SECONDS`)."""
        port = free_port()
        env = {
            **os.environ,
            "HALTON_ENV": "development",
            "HALTON_DATA_DIR": str(home / "cloud"),
            "HALTON_DATABASE_URL": database_url,
            "HALTON_CLICKHOUSE_URL": warehouse_url,
            "HALTON_CLICKHOUSE_DATABASE_PREFIX": prefix,
            "HALTON_SECRET_KEY": secrets.token_urlsafe(48),
            "HALTON_PUBLIC_URL": f"http://127.0.0.1:{port}",
            **{f"HALTON_{name}": value for name, value in settings.items()},
        }
        return cls(env=env, port=port, log_path=home / "api.log")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, healthy: bool = True) -> None:
        """Start and wait until `/healthz` says both stores are up (`healthy` off: until it answers at all,
        for an API started over a warehouse it cannot reach)."""
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "halton_api",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                "warning",
            ],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        wait_for(
            lambda: self._healthy(healthy), timeout=60, what=f"the API on {self.url} (log: {self.log_path})"
        )

    def _healthy(self, healthy: bool = True) -> bool:
        assert self.process is not None and self.process.poll() is None, self.log_path.read_text()[-3000:]
        try:
            status = httpx.get(f"{self.url}/healthz", timeout=2).status_code
        except httpx.HTTPError:
            return False
        return status == 200 or not healthy

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


@dataclass
class Person:
    """Someone signed in to the cloud in a browser-like client (cookies, CSRF tokens from the pages)."""

    base_url: str
    email: str
    client: httpx.Client = field(init=False)
    workspace_slug: str = ""

    def __post_init__(self) -> None:
        self.client = httpx.Client(base_url=self.base_url, follow_redirects=False, timeout=30)

    def csrf(self, path: str) -> str:
        page = self.client.get(path)
        match = CSRF_FIELD.search(page.text)
        assert match, f"no CSRF field on {path} ({page.status_code})"
        return match.group(1)

    def sign_up(self, workspace_name: str) -> Person:
        token = self.csrf("/signup")
        response = self.client.post(
            "/signup",
            data={
                "csrf_token": token,
                "email": self.email,
                "password": PASSWORD,
                "name": "Vera",
                "workspace_name": workspace_name,
            },
        )
        assert response.status_code == 303, response.text
        self.workspace_slug = response.headers["location"].strip("/").split("/")[0]
        return self

    def approve(self, code: str, workspace: str | None = None) -> httpx.Response:
        token = self.csrf(f"/connect?code={code}")
        return self.client.post(
            "/connect",
            data={
                "csrf_token": token,
                "code": code,
                "workspace": workspace or self.workspace_slug,
                "decision": "approve",
            },
        )

    def post_form(self, path: str, page: str, data: dict | None = None) -> httpx.Response:
        return self.client.post(path, data={"csrf_token": self.csrf(page), **(data or {})})


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def launch_chromium(playwright):
    """Debian's Chromium driven by Playwright (its own browser download cannot work here)."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)


@dataclass
class DashboardPage:
    """A Playwright page on the cloud that records console errors and reads the figures a page shows."""

    page: object
    demo: object
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.page.on(
            "console", lambda m: self.errors.append(f"{m.type}: {m.text}") if m.type == "error" else None
        )
        self.page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))

    def sign_in(self, email: str, password: str) -> None:
        self.page.goto("/signin")
        self.page.fill("input[name=email]", email)
        self.page.fill("input[name=password]", password)
        self.page.click("button[type=submit]")
        self.page.wait_for_url("**/overview**")

    def open(self, path: str) -> object:
        """Go to `path` (`{ws}` is the demo workspace's slug); fails on an error status."""
        response = self.page.goto(path.replace("{ws}", self.demo.slug))
        assert response is not None and response.ok, (
            f"{path}: {response.status if response else 'no response'}"
        )
        return response

    def figure(self, name: str) -> str:
        """The text of `[data-figure=name]` (its first line: the number, not the note under it)."""
        return self.page.locator(f"[data-figure={name}]").inner_text().splitlines()[0].strip()

    def table(self, name: str) -> list[list[str]]:
        """The body cells of `table[data-table=name]`, as text."""
        rows = self.page.locator(f"table[data-table={name}] tbody tr")
        return [
            [cell.strip() for cell in rows.nth(i).locator("td").all_inner_texts()]
            for i in range(rows.count())
        ]

    def screenshot(self, directory, name: str) -> None:
        self.page.screenshot(path=str(directory / f"{name}.png"), full_page=True)


def build_marts(warehouse, postgres_url: str, *, as_of: date) -> dict:
    """What the marts job runs, as Dagster runs it: the control-plane snapshot and the catalogue's rate rows,
    then every dbt model with its data tests as asset checks (all must pass); returns the resources used."""
    import dagster as dg

    from halton_pipelines.defs.dbt import halton_dbt
    from halton_pipelines.defs.rate_row_assets import model_prices
    from halton_pipelines.defs.snapshot import control_plane_snapshot
    from halton_pipelines.resources import ControlPlaneResource, HaltonDbtResource, WarehouseResource

    resources = {
        "warehouse": WarehouseResource(clickhouse_url=warehouse.url, database_prefix=warehouse.prefix),
        "control_plane": ControlPlaneResource(database_url=postgres_url),
        "dbt": HaltonDbtResource(
            clickhouse_url=warehouse.url, database_prefix=warehouse.prefix, as_of=as_of.isoformat()
        ),
    }
    assert dg.materialize([control_plane_snapshot, model_prices], resources=resources).success
    built = dg.materialize([halton_dbt], resources=resources, raise_on_error=False)
    failed = [
        (c.asset_key.to_user_string(), c.check_name)
        for c in built.get_asset_check_evaluations()
        if not c.passed
    ]
    assert built.success and failed == [], f"dbt build failed; failed checks: {failed}"
    return resources
