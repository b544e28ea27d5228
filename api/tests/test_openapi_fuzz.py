"""Schemathesis over our OpenAPI schema, against a real uvicorn: whatever it sends, no 5xx.

Requests carry real credentials (a workspace API key, a device sync token) and the real workspace slug,
so generated bodies and parameters reach validation and the stores instead of stopping at 401/404.
One stack serves the whole module (a fresh one per operation would cost more than the fuzzing).
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, settings
from psycopg import sql

from halton_api.app import create_app
from halton_api.settings import CloudSettings
from halton_api.testing.factories import make_api_key, make_device, make_user, make_workspace
from halton_warehouse import Databases, WarehouseSettings, connect
from halton_warehouse.migrate import migrate

pytestmark = pytest.mark.slow

TEST_SECRET = "fuzz-secret-key-that-is-long-enough-0123456789"

# The schema comes from the app itself (building it touches no store).
schema = schemathesis.openapi.from_dict(
    create_app(CloudSettings(secret_key=TEST_SECRET, database_url="postgresql://unused")).openapi()
).exclude(path="/v1/daemon/disconnect")  # it would revoke the fuzzer's own token: batches would all be 401


@pytest.fixture(scope="module")
def stack(postgres_server: str, warehouse_server: str, tmp_path_factory) -> Iterator[dict[str, Any]]:
    name = f"fuzz_{secrets.token_hex(4)}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    head, _, query = postgres_server.partition("?")
    database_url = f"{head.rsplit('/', 1)[0]}/{name}?{query}"
    prefix = f"f{secrets.token_hex(4)}_"
    client = connect(warehouse_server)
    migrate(client, Databases.with_prefix(prefix))
    build_marts(warehouse_server, prefix)  # so the dashboards' twins run their queries, not a 503
    cloud = CloudSettings(
        data_dir=tmp_path_factory.mktemp("fuzz"),
        database_url=database_url,
        warehouse=WarehouseSettings(clickhouse_url=warehouse_server, clickhouse_database_prefix=prefix),
        secret_key=TEST_SECRET,
    )
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(cloud), host="127.0.0.1", port=0, log_level="warning", **cloud.uvicorn_options()
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    workspace = make_workspace(database_url, owner=make_user(database_url))
    yield {
        "base_url": f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}",
        "workspace": workspace.slug,
        "device_token": make_device(database_url, workspace=workspace).token,
        "api_key": make_api_key(database_url, workspace=workspace).key,
    }
    server.should_exit = True
    thread.join(timeout=30)
    for database in (*Databases.with_prefix(prefix).__dict__.values(), f"{prefix}staging"):
        client.command(f"DROP DATABASE IF EXISTS {database} SYNC")
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def build_marts(warehouse_url: str, prefix: str) -> None:
    """`halton-dbt run` on the (empty) raw tables: the marts the dashboards read, as Dagster builds them."""
    env = {**os.environ, "HALTON_CLICKHOUSE_URL": warehouse_url, "HALTON_CLICKHOUSE_DATABASE_PREFIX": prefix}
    command = [str(Path(sys.executable).with_name("halton-dbt")), "run"]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_input_makes_the_api_fail(case, stack: dict[str, Any]) -> None:
    if "workspace" in (case.path_parameters or {}):
        case.path_parameters["workspace"] = stack["workspace"]
    token = stack["api_key"] if case.path.startswith("/v1/{workspace}") else stack["device_token"]
    case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}
    response = case.call(base_url=stack["base_url"], timeout=30)
    assert response.status_code < 500, (
        f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:500]}"
    )
