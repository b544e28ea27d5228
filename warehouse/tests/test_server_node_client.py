"""The official Node client, @clickhouse/client from npm, on its default settings: query, a streamed 1M-row result,
insert, and an error part-way through a result.

The client is installed by `npm ci` from the committed package.json and package-lock.json in tests/node/ (the
first run of this module does it when node_modules is missing); Node 20 comes with the machine.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from halton_warehouse import connect
from halton_warehouse.embedded import EmbeddedWarehouse, start_embedded

NODE_DIR = Path(__file__).parent / "node"


@pytest.fixture(scope="module")
def node_client() -> Path:
    node, npm = shutil.which("node"), shutil.which("npm")
    assert node and npm, "Node 20 and npm are needed: the machine image installs them"
    if not (NODE_DIR / "node_modules" / "@clickhouse" / "client").is_dir():
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True, timeout=600)
    return Path(node)


@pytest.fixture(scope="module")
def server(module_server_dir: Path) -> Iterator[EmbeddedWarehouse]:
    with start_embedded(module_server_dir / "chdb", log_path=module_server_dir / "server.log") as running:
        yield running


def test_the_node_client_queries_streams_and_inserts(node_client: Path, server: EmbeddedWarehouse) -> None:
    assert server.logins is not None
    database = f"node_{uuid.uuid4().hex[:8]}"
    connect(server.url).command(f"CREATE DATABASE {database}")
    login = server.logins.admin
    finished = subprocess.run(
        [
            str(node_client),
            "client_check.mjs",
            f"http://127.0.0.1:{server.port}",
            login.user,
            login.password,
            database,
        ],
        cwd=NODE_DIR,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert finished.returncode == 0, finished.stderr
    seen = json.loads(finished.stdout)
    assert seen["version"] == [{"v": connect(server.url).server_version, "u": login.user}]
    assert seen["streamed"] == {"rows": 1_000_000, "sum": str(sum(range(1_000_000)))}
    assert seen["inserted"] == [{"n": 10000, "models": 7}]  # ClickHouse 26 no longer quotes 64-bit integers
    assert seen["error"] and "node sees this" in seen["error"]
