"""dbt-clickhouse (driver: http) runs a small project against the embedded warehouse server."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from clickhouse_connect.driver.client import Client

from halton_warehouse import connect
from halton_warehouse.embedded import EmbeddedWarehouse, start_embedded

FIXTURE = Path(__file__).parent / "dbt_fixture"


@pytest.fixture(scope="module")
def server(module_server_dir: Path) -> Iterator[EmbeddedWarehouse]:
    root = module_server_dir
    with start_embedded(root / "chdb", log_path=root / "server.log") as running:
        yield running


@pytest.fixture
def schema(server: EmbeddedWarehouse) -> Iterator[str]:
    """A fresh Atomic database holding the source table, as the target schema."""
    client = connect(server.url)
    name = f"dbt_{uuid.uuid4().hex[:10]}"
    client.command(f"CREATE DATABASE {name} ENGINE = Atomic")
    client.command(
        f"CREATE TABLE {name}.calls (call_id UInt64, provider LowCardinality(String), "
        "ts DateTime64(3, 'UTC'), cost_usd Decimal(18, 9)) ENGINE = MergeTree ORDER BY call_id"
    )
    add_calls(client, name, first=1, count=30)
    yield name
    client.command(f"DROP DATABASE IF EXISTS {name} SYNC")


def add_calls(client: Client, schema: str, first: int, count: int) -> None:
    client.command(
        f"INSERT INTO {schema}.calls SELECT number + {first}, ['anthropic', 'openai', 'gemini'][number % 3 + 1], "
        f"now64(3), toDecimal64(number / 100, 9) FROM numbers({count})"
    )


@pytest.fixture
def dbt(tmp_path: Path, server: EmbeddedWarehouse, schema: str, monkeypatch: pytest.MonkeyPatch):
    from dbt.cli.main import dbtRunner

    project = tmp_path / "project"
    shutil.copytree(FIXTURE, project)
    (tmp_path / "profiles.yml").write_text(
        "halton_http_fixture:\n"
        "  target: embedded\n"
        "  outputs:\n"
        "    embedded:\n"
        "      type: clickhouse\n"
        "      driver: http\n"
        "      host: 127.0.0.1\n"
        f"      port: {server.port}\n"
        f"      user: {server.logins.admin.user}\n"
        f"      password: '{server.logins.admin.password}'\n"
        f"      schema: {schema}\n"
        "      threads: 2\n"
    )
    monkeypatch.setenv("DBT_PROFILES_DIR", str(tmp_path))
    monkeypatch.setenv("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    monkeypatch.setenv("DBT_TARGET_PATH", str(tmp_path / "target"))
    monkeypatch.setenv("DBT_LOG_PATH", str(tmp_path / "logs"))
    runner = dbtRunner()
    common = ["--project-dir", str(project)]

    def invoke(*args: str):
        result = runner.invoke([*args, *common])
        assert result.success, f"dbt {' '.join(args)} failed: {result.exception or result.result}"
        return result

    return invoke


def test_dbt_debug_and_build_over_http(dbt, server: EmbeddedWarehouse, schema: str) -> None:
    client = connect(server.url)
    dbt("debug")

    first = dbt("build")
    statuses = {result.node.name: str(result.status) for result in first.result.results}
    assert set(statuses.values()) <= {"success", "pass"}, statuses
    assert sum(name.startswith(("unique_", "not_null_", "source_")) for name in statuses) == 10
    engines = dict(
        client.query(f"SELECT name, engine FROM system.tables WHERE database = '{schema}'").result_rows
    )
    assert engines["stg_calls"] == "View"
    assert engines["provider_costs"] == "MergeTree" and engines["calls_incremental"] == "MergeTree"
    assert client.command(f"SELECT count() FROM {schema}.providers") == 3
    assert client.query(
        f"SELECT provider, calls FROM {schema}.provider_costs ORDER BY provider"
    ).result_rows == [("anthropic", 10), ("gemini", 10), ("openai", 10)]

    add_calls(client, schema, first=31, count=5)
    dbt("build", "--select", "calls_incremental")
    loads = client.query(
        f"SELECT loaded_by, count(), min(call_id), max(call_id) FROM {schema}.calls_incremental "
        "GROUP BY loaded_by ORDER BY min(call_id)"
    ).result_rows
    assert [row[1:] for row in loads] == [(30, 1, 30), (5, 31, 35)], (
        "the second run appends only the new rows"
    )
    assert client.command(f"SELECT uniqExact(call_id) FROM {schema}.calls_incremental") == 35
