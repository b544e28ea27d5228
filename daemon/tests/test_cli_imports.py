"""The everyday commands must not load heavy modules they do not use (a fast CLI, issue 18).

Each command runs in a fresh interpreter, as a user's shell would start it, against a real home; the
test then reads ``sys.modules`` in that interpreter. A module named here costs tens to hundreds of
milliseconds at start: if one creeps back onto these paths, move its import into the function that
needs it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from halton_meter.paths import MeterPaths
from halton_meter.testing.fake_cloud import FakeCloud, store_rows

# Run the command as the console script does, then list what it imported (even when it exits).
RUN_AND_LIST = """
import json, sys
from halton_meter.cli import main
out, args = sys.argv[1], sys.argv[2:]
try:
    main(args, prog_name="halton-meter")
except SystemExit as exc:
    code = exc.code
with open(out, "w") as sink:
    json.dump({"code": code, "modules": sorted(sys.modules)}, sink)
"""

# Never needed to read the config, the database, the pid file or the cloud state from disk. pydantic
# is the wire model's (halton_meter.protocol): only syncing builds one.
HEAVY = (
    "mitmproxy",
    "httpx",
    "httpcore",
    "h11",
    "cryptography",
    "genai_prices",
    "pygments",
    "pydantic",
    "pydantic_core",
)


def imported(paths: MeterPaths, tmp_path: Path, *args: str) -> set[str]:
    out = tmp_path / "modules.json"
    env = {**os.environ, "HALTON_METER_HOME": str(paths.home)}
    done = subprocess.run(
        [sys.executable, "-c", RUN_AND_LIST, str(out), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    document = json.loads(out.read_text())
    assert document["code"] in (0, None), done.stdout + done.stderr
    return set(document["modules"])


def heavy_in(modules: set[str], heavy: tuple[str, ...] = HEAVY) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in heavy)


@pytest.fixture
def cloud() -> Iterator[FakeCloud]:
    with FakeCloud() as fake:
        yield fake


def test_importing_the_cli_loads_no_heavy_module(home, tmp_path):
    out = tmp_path / "modules.json"
    code = f"import json, sys, halton_meter.cli; json.dump(sorted(sys.modules), open({str(out)!r}, 'w'))"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    modules = set(json.loads(out.read_text()))
    assert heavy_in(modules) == []
    # Only the commands that draw tables pay for them.
    assert "rich.table" not in modules


@pytest.mark.parametrize(
    "args",
    [["status"], ["status", "--json"], ["cloud", "status"], ["report", "7d"], ["report", "--json"]],
)
def test_read_only_commands_load_no_heavy_module(home, tmp_path, args):
    store_rows(home, 20)
    assert heavy_in(imported(home, tmp_path, *args)) == []


@pytest.mark.parametrize("args", [["status"], ["cloud", "status", "--json"]])
def test_a_paired_home_decrypts_the_token_but_makes_no_http_client(home, tmp_path, cloud, args):
    cloud.pair(home)
    store_rows(home, 20)
    modules = imported(home, tmp_path, *args)
    # cryptography is expected here: the cloud state says whether the saved token still decrypts.
    assert heavy_in(modules, tuple(h for h in HEAVY if h != "cryptography")) == []


@pytest.mark.parametrize("args", [["cloud", "whoami"], ["cloud", "whoami", "--json"]])
def test_whoami_asks_the_cloud_without_httpx(home, tmp_path, cloud, args):
    # Its one GET goes through the standard library (CloudClient.whoami); the token still decrypts.
    cloud.pair(home)
    modules = imported(home, tmp_path, *args)
    assert heavy_in(modules, tuple(h for h in HEAVY if h != "cryptography")) == []
    assert "rich.table" not in modules


def test_cloud_status_draws_no_table(home, tmp_path):
    assert "rich.table" not in imported(home, tmp_path, "cloud", "status")
