"""Migrations: numbered, append-only, idempotent, and renderable for a cluster."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

from halton_warehouse import Databases
from halton_warehouse.migrate import MigrationError, load_migrations, migrate, render

SNAPSHOTS = Path(__file__).parent / "snapshots"


def _rendered(cluster: str | None) -> str:
    databases = Databases.with_prefix("")
    return (
        "\n".join(
            f"-- {m.version:04d}_{m.name}\n" + ";\n".join(m.statements(databases, cluster)) + ";"
            for m in load_migrations()
        )
        + "\n"
    )


@pytest.mark.parametrize("cluster, snapshot", [(None, "single_node.sql"), ("halton", "cluster.sql")])
def test_rendered_ddl_matches_snapshot(cluster: str | None, snapshot: str) -> None:
    # A changed snapshot means a changed schema: review it, then regenerate with UPDATE_SNAPSHOTS=1.
    path = SNAPSHOTS / snapshot
    rendered = _rendered(cluster)
    if os.environ.get("UPDATE_SNAPSHOTS"):
        path.write_text(rendered)
    assert path.exists(), f"no snapshot {path.name}: review the DDL, then run with UPDATE_SNAPSHOTS=1"
    assert rendered == path.read_text()


def test_prefixes_are_unique_and_files_well_named() -> None:
    # load_migrations itself refuses a repeated prefix or a misnamed file; this makes it a test failure.
    versions = [m.version for m in load_migrations()]
    assert len(versions) == len(set(versions)) and versions == sorted(versions)
    sql_files = [
        p for p in resources.files("halton_warehouse.migrations").iterdir() if p.name.endswith(".sql")
    ]
    assert len(sql_files) == len(versions)


def test_cluster_rendering_replicates_every_table_and_targets_the_cluster() -> None:
    for statement in render(load_migrations()[0].sql, Databases.with_prefix(""), "prod"):
        assert "ON CLUSTER 'prod'" in statement
        if "ENGINE = " in statement and "MergeTree" in statement:
            assert (
                "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}'"
                in statement
            )


def test_single_node_rendering_has_no_cluster_clause() -> None:
    text = _rendered(None)
    assert "ON CLUSTER" not in text and "Replicated" not in text


# chDB in a process of its own (one process opens one chDB path): the embedded server refuses any statement
# naming a cluster, as it must, even to parse it.
_PARSE = """
import json, sys
import clickhouse_connect
client = clickhouse_connect.get_client(dsn="chdb://" + sys.argv[1])
out = []
for statement in json.load(sys.stdin):
    ast = [row[0].strip() for row in client.query("EXPLAIN AST " + statement).result_rows]
    parsed = client.query("SELECT formatQuerySingleLine({q:String})", parameters={"q": statement}).result_rows
    out.append([ast, parsed[0][0]])
json.dump(out, sys.stdout)
"""


def _parsed(statements: list[str], chdb_dir: Path) -> list[tuple[list[str], str]]:
    """Each statement's AST (`EXPLAIN AST`) and the statement printed back from it, by ClickHouse's parser."""
    done = subprocess.run(
        [sys.executable, "-c", _PARSE, str(chdb_dir)], input=json.dumps(statements), capture_output=True,
        text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return [(ast, parsed) for ast, parsed in json.loads(done.stdout)]


def test_every_rendered_cluster_statement_parses_with_the_engines_parser(server_dir: Path) -> None:
    """No ClickHouse cluster runs here: the engine's own parser (chDB's `EXPLAIN AST`, and `formatQuery`,
    which prints what it parsed) checks every statement rendered for one. Each targets the cluster, every
    MergeTree is Replicated, and every replicated table keyed by workspace has a Distributed table over it,
    sharded by workspace, on the same cluster."""
    statements = [
        (migration.name, statement)
        for migration in load_migrations()
        for statement in migration.statements(Databases.with_prefix(""), "halton")
    ]
    replicated_by_workspace: set[str] = set()
    distributed: dict[str, str] = {}
    parsed_all = _parsed([statement for _, statement in statements], server_dir / "chdb")
    for (name, _), (ast, parsed) in zip(statements, parsed_all, strict=True):
        assert " ON CLUSTER halton " in f"{parsed} ", (name, parsed)
        engines = [line.split()[1] for line in ast if line.startswith("Function") and "MergeTree" in line]
        assert all(engine.startswith("Replicated") for engine in engines), (name, engines)
        head = ast[0].split()  # CreateQuery <database> <table> …
        if engines and head[0] == "CreateQuery" and "`workspace_id`" in parsed:
            replicated_by_workspace.add(f"{head[1]}.{head[2]}")
        if any(line.startswith("Function Distributed") for line in ast):
            assert "ENGINE = Distributed('halton', " in parsed, parsed
            assert parsed.endswith(", cityHash64(workspace_id))"), parsed  # sharded by workspace
            over = parsed.split("ENGINE = Distributed('halton', ", 1)[1].split(",")[:2]
            distributed[f"{head[1]}.{head[2]}"] = ".".join(part.strip() for part in over)
    assert len(parsed_all) == len(statements) and distributed
    assert sorted(distributed.values()) == sorted(replicated_by_workspace)
    assert all(name == f"{over}_all" for name, over in distributed.items())


def test_a_single_node_creates_no_distributed_table() -> None:
    assert "Distributed" not in _rendered(None)
    (distributed,) = [m for m in load_migrations() if m.name == "distributed_by_workspace"]
    assert distributed.statements(Databases.with_prefix(""), None) == []  # recorded, creates nothing


def test_migrate_twice_changes_nothing(warehouse) -> None:
    client = warehouse.client()
    before = client.query(
        f"SELECT name, engine_full FROM system.tables WHERE database = '{warehouse.databases.raw}'"
    )
    assert migrate(client, warehouse.databases) == []
    after = client.query(
        f"SELECT name, engine_full FROM system.tables WHERE database = '{warehouse.databases.raw}'"
    )
    assert before.result_rows == after.result_rows
    recorded = client.query(
        f"SELECT count() FROM {warehouse.databases.meta}.schema_migrations FINAL"
    ).result_rows
    assert recorded == [(len(load_migrations()),)]


def test_two_processes_migrating_at_once_both_succeed(warehouse_server: str) -> None:
    prefix = "tconcurrent_"
    script = (
        "from halton_warehouse import connect, Databases\n"
        "from halton_warehouse.migrate import migrate\n"
        f"migrate(connect({warehouse_server!r}), Databases.with_prefix({prefix!r}))\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE) for _ in range(2)]
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err.decode()
    from halton_warehouse import connect

    client = connect(warehouse_server)
    databases = Databases.with_prefix(prefix)
    assert client.query(f"SELECT count() FROM {databases.meta}.schema_migrations FINAL").result_rows == [
        (len(load_migrations()),)
    ]
    # However the two interleaved (0005 rebuilds the table, 0006 adds columns to it), the last state has them.
    for table in ("requests", "requests_dedup"):
        columns = client.query(
            f"SELECT name FROM system.columns WHERE database = '{databases.raw}' AND table = '{table}'"
        ).result_rows
        assert {("region",), ("web_search_requests",)} <= set(columns), table
    for name in (databases.raw, databases.meta):
        client.command(f"DROP DATABASE IF EXISTS {name} SYNC")


def test_an_edited_migration_is_refused(warehouse) -> None:
    client = warehouse.client()
    client.command(
        f"INSERT INTO {warehouse.databases.meta}.schema_migrations (version, name, checksum) "
        "VALUES (1, 'raw_requests', 'not-the-checksum')"
    )
    with pytest.raises(MigrationError, match="append-only"):
        migrate(client, warehouse.databases)


def test_raw_requests_dedupes_a_resent_row(warehouse) -> None:
    client = warehouse.client()
    raw = warehouse.databases.raw
    row = (
        "toUUID('00000000-0000-0000-0000-0000000000a1'), toUUID('00000000-0000-0000-0000-0000000000d1'), "
        "toUUID('00000000-0000-0000-0000-000000000001'), 'm1', generateUUIDv4(), "
        "'2026-11-01 10:00:00.000', '2026-11-01 10:00:01.250', 'anthropic', 'claude-sonnet-4-5', "
        "'claude-sonnet-4-5', '/v1/messages', 200, false, true, NULL, false, 1200, 300, 1000, 0, 0, 0, "
        "0.012345678, 'card', 'acme', 'header', 'h', 'msg_1', 1250, 200, 'us', 2, 'shop', 'SHOP-1-cart', "
        "'SHOP-1', 'claude-code', '2.0.14', now64(3)"
    )
    for _ in range(3):
        client.command(f"INSERT INTO {raw}.requests VALUES ({row})")
    assert client.query(f"SELECT count(), sum(cost_usd) FROM {raw}.requests_dedup").result_rows == [
        (1, __import__("decimal").Decimal("0.012345678"))
    ]


def test_region_and_web_searches_are_null_unless_sent_and_read_through_the_dedup_view(warehouse) -> None:
    """0006 adds region and web_search_requests before ingested_at: a row written without them (an older
    meter) reads NULL, never "" or 0, and the dedup view every reader goes through shows both."""
    client = warehouse.client()
    raw = warehouse.databases.raw
    types = dict(
        client.query(
            f"SELECT name, type FROM system.columns WHERE database = '{raw}' AND table = 'requests' "
            "AND name IN ('region', 'web_search_requests')"
        ).result_rows
    )
    assert types == {"region": "LowCardinality(Nullable(String))", "web_search_requests": "Nullable(UInt32)"}
    for uid, extra_columns, extra_values in (
        ("b1", "", ""),
        ("b2", ", region, web_search_requests", ", 'us', 3"),
    ):
        client.command(
            f"INSERT INTO {raw}.requests (workspace_id, request_uid, started_at, ended_at, provider, endpoint"
            f"{extra_columns}) VALUES (generateUUIDv4(), toUUID('00000000-0000-0000-0000-0000000000{uid}'),"
            f" now64(3), now64(3), 'anthropic', '/v1/messages'{extra_values})"
        )
    assert client.query(
        f"SELECT region, web_search_requests FROM {raw}.requests_dedup ORDER BY request_uid"
    ).result_rows == [(None, None), ("us", 3)]


def test_the_call_origin_is_null_unless_sent_and_read_through_the_dedup_view(warehouse) -> None:
    """0011 adds where a call came from (repository, branch, ticket, tool, tool_version) before ingested_at:
    a row from an older meter reads NULL, and the dedup view shows the new columns."""
    client = warehouse.client()
    raw = warehouse.databases.raw
    origin = ("repository", "branch", "ticket", "tool", "tool_version")
    for uid, extra_columns, extra_values in (
        ("c1", "", ""),
        ("c2", ", " + ", ".join(origin), ", 'shop', 'feature/SHOP-1', 'SHOP-1', 'claude-code', '2.0.14'"),
    ):
        client.command(
            f"INSERT INTO {raw}.requests (workspace_id, request_uid, started_at, ended_at, provider, endpoint"
            f"{extra_columns}) VALUES (generateUUIDv4(), toUUID('00000000-0000-0000-0000-0000000000{uid}'),"
            f" now64(3), now64(3), 'anthropic', '/v1/messages'{extra_values})"
        )
    assert client.query(
        f"SELECT {', '.join(origin)} FROM {raw}.requests_dedup ORDER BY request_uid"
    ).result_rows == [(None,) * 5, ("shop", "feature/SHOP-1", "SHOP-1", "claude-code", "2.0.14")]


def test_rekeying_raw_requests_by_time_keeps_every_row(warehouse) -> None:
    """0005 rebuilds raw.requests with machine_id and started_at in its key: every request and value survives (re-sent copies
    may collapse in the copy, as merges collapse them), defaults still apply, and running it again changes
    nothing."""
    client = warehouse.client()
    databases = warehouse.databases
    raw = databases.raw
    migrations = {m.version: m for m in load_migrations()}
    old_table = next(s for s in migrations[1].statements(databases) if "CREATE TABLE" in s)
    client.command(f"DROP TABLE {raw}.requests SYNC")
    client.command(old_table)  # raw.requests as it was before 0005
    # ...and its read path as it was then (0006 recreated the view with the columns it added).
    client.command(f"CREATE OR REPLACE VIEW {raw}.requests_dedup AS SELECT * FROM {raw}.requests FINAL")
    assert _sorting_key(client, raw) == "workspace_id, toDate(started_at), request_uid"
    for uid, copies in (("a1", 2), ("a2", 1)):
        for _ in range(copies):
            client.command(
                f"INSERT INTO {raw}.requests (workspace_id, device_id, request_uid, machine_id, batch_id,"
                " started_at, ended_at, provider, endpoint, streamed, complete, batch, cost_usd, project,"
                " attribution_tier) VALUES (toUUID('00000000-0000-0000-0000-000000000001'), generateUUIDv4(),"
                f" toUUID('00000000-0000-0000-0000-0000000000{uid}'), 'm1', generateUUIDv4(), '2026-11-01 10:00:00.123',"
                " '2026-11-01 10:00:01.250', 'anthropic', '/v1/messages', false, true, false, 0.012345678,"
                " 'acme', 'header')"
            )
    read = f"SELECT * FROM {raw}.requests_dedup ORDER BY request_uid"
    before = client.query(read).result_rows
    assert len(before) == 2
    for _ in range(2):
        for statement in migrations[5].statements(databases):
            client.command(statement)
    assert (
        _sorting_key(client, raw) == "workspace_id, toDate(started_at), machine_id, started_at, request_uid"
    )
    assert client.query(read).result_rows == before
    assert client.query(
        f"SELECT name, type FROM system.data_skipping_indices WHERE database = '{raw}' AND table = 'requests'"
    ).result_rows == [("request_uid_bloom", "bloom_filter")]
    client.command(
        f"INSERT INTO {raw}.requests (workspace_id, request_uid, started_at, ended_at, provider, endpoint)"
        " VALUES (generateUUIDv4(), generateUUIDv4(), now64(3), now64(3), 'openai', '/v1/responses')"
    )
    # The new row took ingested_at's default; a re-sent one still collapses under the new key.
    client.command(
        f"INSERT INTO {raw}.requests SELECT * FROM {raw}.requests WHERE request_uid = '{before[0][2]}'"
    )
    assert client.query(
        f"SELECT count(), countIf(ingested_at > '2026-01-01') FROM {raw}.requests_dedup"
    ).result_rows == [(3, 3)]


def _sorting_key(client, raw: str) -> str:
    return client.query(
        f"SELECT sorting_key FROM system.tables WHERE database = '{raw}' AND name = 'requests'"
    ).result_rows[0][0]
