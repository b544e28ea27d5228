"""Numbered, append-only warehouse migrations, tracked in a table.

Each file `migrations/NNNN_name.sql` holds `;`-separated statements with `{raw}`, `{marts}`, `{meta}` and
`{on_cluster}` placeholders. Every statement must be idempotent by itself (`IF NOT EXISTS`), because
ClickHouse has no DDL transactions or locks: two processes migrating at once both run the statements,
and both record the version in a ReplacingMergeTree, which keeps one row.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from importlib import resources

from clickhouse_connect.driver.client import Client

from halton_warehouse.warehouse_settings import Databases

log = logging.getLogger(__name__)

_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_ENGINE = re.compile(r"ENGINE\s*=\s*(Replacing|Summing|Aggregating|Collapsing)?MergeTree\(([^)]*)\)")
_DISTRIBUTED = re.compile(r"ENGINE\s*=\s*Distributed\(")
_COMMENT_LINE = re.compile(r"^\s*--.*$", re.MULTILINE)


class MigrationError(RuntimeError):
    """A migration cannot be applied as recorded."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    def statements(self, databases: Databases, cluster: str | None = None) -> list[str]:
        return render(self.sql, databases, cluster)


def load_migrations(package: str = "halton_warehouse.migrations") -> list[Migration]:
    """All migration files of `package` in version order; fails on a misnamed file or a repeated prefix.

    The control plane's Postgres migrations (`halton_api.migrations`) follow the same file rules and load
    through here too.
    """
    found: dict[int, Migration] = {}
    for entry in resources.files(package).iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _FILE_NAME.match(entry.name)
        if not match:
            raise MigrationError(f"migration file {entry.name!r} is not named NNNN_lower_snake.sql")
        version = int(match.group(1))
        if version in found:
            raise MigrationError(
                f"two migrations share the prefix {version:04d}: {found[version].name}, {entry.name}"
            )
        found[version] = Migration(version, match.group(2), entry.read_text())
    return [found[v] for v in sorted(found)]


def render(sql: str, databases: Databases, cluster: str | None = None) -> list[str]:
    """The statements of one migration for a single node, or for a cluster (ON CLUSTER, Replicated*, and the
    Distributed tables, which exist only on a cluster: a single node has nothing to distribute over)."""
    # Statements keep their line breaks so that DDL snapshots stay reviewable as diffs.
    text = _COMMENT_LINE.sub("", sql).format(
        raw=databases.raw,
        marts=databases.marts,
        meta=databases.meta,
        on_cluster=f"ON CLUSTER '{cluster}'" if cluster else "",
        cluster=f"'{cluster}'" if cluster else "''",
    )
    if cluster:
        text = _ENGINE.sub(_replicated, text)
    statements = (
        "\n".join(line.rstrip() for line in stmt.splitlines() if line.strip()) for stmt in text.split(";")
    )
    return [stmt for stmt in statements if stmt and (cluster or not _DISTRIBUTED.search(stmt))]


def _replicated(match: re.Match[str]) -> str:
    kind, args = match.group(1) or "", match.group(2).strip()
    path_args = "'/clickhouse/tables/{shard}/{database}/{table}', '{replica}'"
    return f"ENGINE = Replicated{kind}MergeTree({path_args}{', ' + args if args else ''})"


def migrate(client: Client, databases: Databases, cluster: str | None = None) -> list[int]:
    """Apply every migration not yet recorded; returns the versions applied now."""
    on_cluster = f"ON CLUSTER '{cluster}'" if cluster else ""
    engine = (
        "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', applied_at)"
        if cluster
        else "ReplacingMergeTree(applied_at)"
    )
    client.command(f"CREATE DATABASE IF NOT EXISTS {databases.meta} {on_cluster} ENGINE = Atomic")
    client.command(
        f"CREATE TABLE IF NOT EXISTS {databases.meta}.schema_migrations {on_cluster} "
        "(version UInt32, name String, checksum String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) "
        f"ENGINE = {engine} ORDER BY version"
    )
    recorded = {
        row[0]: row[1]
        for row in client.query(
            f"SELECT version, checksum FROM {databases.meta}.schema_migrations FINAL"
        ).result_rows
    }
    applied: list[int] = []
    for migration in load_migrations():
        if migration.version in recorded:
            if recorded[migration.version] != migration.checksum:
                raise MigrationError(
                    f"migration {migration.version:04d}_{migration.name} was changed after it was applied; "
                    "migrations are append-only: add a new file instead"
                )
            continue
        log.info("applying warehouse migration %04d_%s", migration.version, migration.name)
        try:
            for statement in migration.statements(databases, cluster):
                client.command(statement)
        except Exception:
            # A process migrating at the same time may have applied this one and gone on to the next (0005
            # rebuilds raw.requests from `SELECT *`, which fails once 0006 has added columns): that is done.
            if _recorded(client, databases, migration.version):
                log.info("migration %04d was applied by another process meanwhile", migration.version)
                continue
            raise
        client.insert(
            f"{databases.meta}.schema_migrations",
            [[migration.version, migration.name, migration.checksum]],
            column_names=["version", "name", "checksum"],
        )
        applied.append(migration.version)
    return applied


def _recorded(client: Client, databases: Databases, version: int) -> bool:
    return bool(
        client.query(
            f"SELECT count() FROM {databases.meta}.schema_migrations FINAL WHERE version = {{v:UInt32}}",
            parameters={"v": version},
        ).result_rows[0][0]
    )
