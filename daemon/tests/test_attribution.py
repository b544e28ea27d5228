"""Attribution tiers (header, API key, directory, default) and the process lookup behind them."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from mitmproxy import exceptions, http
from mitmproxy.test import taddons, tflow

from halton_meter.attribution import (
    ATTRIBUTION,
    HEADER,
    Attributed,
    Attribution,
    ProcessLocator,
    api_key_of,
    git_toplevel,
    match_key,
    project_for_directory,
    slugify,
)
from halton_meter.health import Health
from halton_meter.origin import CallOrigin
from halton_meter.routing import ROUTE, Route

KEY = "sk-ant-api03-secret-key"
FINGERPRINT = "sha256:" + hashlib.sha256(KEY.encode()).hexdigest()[:16]


class FixedLocator(ProcessLocator):
    """A locator that knows the answer (the real one is tested against a real socket below)."""

    def __init__(self, cwd: Path | None) -> None:
        super().__init__()
        self.cwd = cwd

    supported = True

    def pid_for(self, client_port: int, server_port: int) -> int | None:
        return 4242 if self.cwd else None

    def cwd_of(self, pid: int) -> Path | None:
        return self.cwd


def metered_flow(**headers: str) -> http.HTTPFlow:
    f = tflow.tflow(req=http.Request.make("POST", "https://api.anthropic.com/v1/messages", b"{}", headers))
    f.metadata[ROUTE] = Route("anthropic", "proxy", "/v1/messages")
    f.client_conn.peername = ("127.0.0.1", 50123)
    f.client_conn.sockname = ("127.0.0.1", 8090)
    return f


def attribute(
    f: http.HTTPFlow, locator: ProcessLocator | None = None, health: Health | None = None, **options
) -> Attributed:
    async def go() -> Attributed:
        addon = Attribution(health or Health(), locator or FixedLocator(None))
        with taddons.context(addon) as tctx:
            tctx.configure(addon, **options)
            await addon.requestheaders(f)
            await addon.request(f)
            value = f.metadata[ATTRIBUTION]
            if isinstance(value, asyncio.Future):
                await value
            return addon.resolve(value)

    return asyncio.run(go())


def test_header_tier_wins_and_the_header_is_removed():
    f = metered_flow(**{HEADER: "checkout", "x-api-key": KEY})
    assert attribute(f, halton_key_projects=[f"{FINGERPRINT}=billing"]) == Attributed("checkout", "header")
    assert HEADER not in f.request.headers


def test_a_bad_header_is_removed_counted_and_ignored():
    health = Health()
    f = metered_flow(**{HEADER: "../../etc"})
    assert attribute(f, health=health) == Attributed("default", "default")
    assert HEADER not in f.request.headers
    assert health.errors() == {"attribution.bad_header": 1}


def test_unmetered_flows_keep_their_headers():
    f = tflow.tflow(req=http.Request.make("GET", "http://example.com/", b"", {HEADER: "x"}))
    attribute_flow = Attribution(Health())

    async def go():
        with taddons.context(attribute_flow):
            await attribute_flow.requestheaders(f)

    asyncio.run(go())
    assert f.request.headers[HEADER] == "x"


@pytest.mark.parametrize(
    "headers",
    [{"x-api-key": KEY}, {"authorization": f"Bearer {KEY}"}, {"x-goog-api-key": KEY}, {"api-key": KEY}],
)
def test_api_key_tier_matches_a_fingerprint(headers):
    f = metered_flow(**headers)
    assert attribute(f, halton_key_projects=[f"{FINGERPRINT}=billing"]) == Attributed("billing", "api_key")


def test_api_key_in_a_gemini_query_string():
    assert api_key_of({}, f"/v1beta/models/x:generateContent?key={KEY}&alt=sse") == KEY
    assert match_key(KEY, {FINGERPRINT: "p"}) == "p"
    assert match_key("another-key", {FINGERPRINT: "p"}) is None


def test_directory_tier_then_default(tmp_path: Path):
    repo = tmp_path / "My Repo!"
    (repo / ".git").mkdir(parents=True)
    (repo / "src").mkdir()
    assert attribute(metered_flow(), FixedLocator(repo / "src")) == Attributed("My-Repo", "directory")
    mapping = [f"{repo}=payments"]
    assert attribute(
        metered_flow(), FixedLocator(repo / "src"), halton_directory_projects=mapping
    ) == Attributed("payments", "directory")
    assert attribute(metered_flow(), FixedLocator(tmp_path)) == Attributed("default", "default")
    assert attribute(metered_flow(), FixedLocator(repo), halton_directory_attribution=False) == Attributed(
        "default", "default"
    )
    assert attribute(metered_flow(), FixedLocator(None), halton_default_project="misc") == Attributed(
        "misc", "default"
    )


def _branch_checkout(tmp_path: Path, branch: str) -> Path:
    repo = tmp_path / "shop"
    (repo / ".git").mkdir(parents=True)
    (repo / ".git" / "HEAD").write_text(f"ref: refs/heads/{branch}\n")
    return repo


def test_the_origin_rides_along_whatever_tier_names_the_project(tmp_path: Path):
    repo = _branch_checkout(tmp_path, "feature/SHOP-42-cart")
    agent = {"user-agent": "Anthropic/Python 0.69.0"}
    origin = CallOrigin("shop", "feature/SHOP-42-cart", "SHOP-42", "anthropic-python", "0.69.0")
    assert attribute(metered_flow(**agent), FixedLocator(repo)) == Attributed("shop", "directory", origin)
    by_header = metered_flow(**{HEADER: "billing", **agent})
    assert attribute(by_header, FixedLocator(repo)) == Attributed("billing", "header", origin)
    # The pattern is configurable; origin off keeps the project and records nothing else.
    assert attribute(
        metered_flow(**agent), FixedLocator(repo), halton_ticket_pattern=r"\d+"
    ).origin == CallOrigin("shop", "feature/SHOP-42-cart", "42", "anthropic-python", "0.69.0")
    assert attribute(metered_flow(**agent), FixedLocator(repo), halton_call_origin=False) == Attributed(
        "shop", "directory"
    )
    # Without a process (another OS, a remote client) the user agent still names the tool.
    assert attribute(metered_flow(**agent), FixedLocator(None)) == Attributed(
        "default", "default", CallOrigin(tool="anthropic-python", tool_version="0.69.0")
    )


def test_a_bad_ticket_pattern_is_refused():
    async def go():
        addon = Attribution(Health())
        with taddons.context(addon) as tctx, pytest.raises(exceptions.OptionsError, match="ticket_pattern"):
            tctx.configure(addon, halton_ticket_pattern="[A-")

    asyncio.run(go())


def test_project_for_directory_prefers_the_deepest_mapping(tmp_path: Path):
    mapping = {tmp_path: "all", tmp_path / "a": "a"}
    assert project_for_directory(tmp_path / "a" / "b", mapping) == "a"
    assert project_for_directory(tmp_path / "c", mapping) == "all"
    assert git_toplevel(Path("/")) is None or git_toplevel(Path("/")) == Path("/")
    assert slugify("My Repo!") == "My-Repo" and slugify("!!!") is None


@pytest.mark.parametrize(
    "options",
    [
        {"halton_default_project": "no spaces"},
        {"halton_key_projects": ["sk-ant-raw-key=x"]},
        {"halton_key_projects": [f"{FINGERPRINT}=bad project"]},
        {"halton_directory_projects": ["=x"]},
    ],
)
def test_bad_options_are_refused(options):
    async def go():
        addon = Attribution(Health())
        with taddons.context(addon) as tctx, pytest.raises(exceptions.OptionsError):
            tctx.configure(addon, **options)

    asyncio.run(go())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc")
def test_process_locator_finds_the_process_behind_a_real_socket(tmp_path: Path):
    """A child process in a git repository connects to us; we find its pid and its folder."""
    repo = tmp_path / "widget-service"
    (repo / ".git").mkdir(parents=True)
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        child = subprocess.Popen(
            [
                sys.executable,
                "-c",
                f"import socket,time; s=socket.create_connection(('127.0.0.1',{port})); time.sleep(30)",
            ],
            cwd=repo,
        )
        try:
            conn, peer = server.accept()
            with conn:
                locator = ProcessLocator()
                pid = locator.pid_for(peer[1], port)
                assert pid == child.pid
                cwd = locator.cwd_of(pid)
                assert cwd == repo
                assert project_for_directory(cwd, {}) == "widget-service"
                assert locator.name_of(pid) == Path(sys.executable).name[:15]
                # A second lookup for the same process takes the fast path (recent pids first).
                assert locator.pid_for(peer[1], port) == child.pid
        finally:
            child.kill()
            child.wait()
    assert os.getpid() != child.pid
