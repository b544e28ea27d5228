"""Fixtures of the pipelines' tests: throwaway warehouse and control-plane databases, resources on them."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from halton_warehouse import Databases, connect
from halton_warehouse.migrate import migrate


@dataclass(frozen=True)
class Stores:
    """Migrated warehouse databases with a random prefix, and an empty control-plane database."""

    warehouse_url: str
    prefix: str
    control_plane_url: str

    @property
    def databases(self) -> Databases:
        return Databases.with_prefix(self.prefix)

    def client(self, **settings):
        return connect(self.warehouse_url, **settings)


def migrate_control_plane(database_url: str, warehouse_url: str, prefix: str, data_dir: Path) -> None:
    """The API's control-plane schema, applied as a deployment applies it: by `halton-cloud migrate`, a
    process of its own, so the pipelines (and their tests) never import the API."""
    env = {
        **os.environ,
        "HALTON_ENV": "development",
        "HALTON_DATABASE_URL": database_url,
        "HALTON_CLICKHOUSE_URL": warehouse_url,
        "HALTON_CLICKHOUSE_DATABASE_PREFIX": prefix,
    }
    command = [str(Path(sys.executable).with_name("halton-cloud")), "migrate", "--data-dir", str(data_dir)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"halton-cloud migrate failed:\n{done.stdout}\n{done.stderr}"


@pytest.fixture(scope="module")
def stores(warehouse_server: str, postgres_server: str, module_server_dir: Path) -> Iterator[Stores]:
    """One set of stores per test module (a module builds its marts once and reuses them)."""
    prefix = f"t{secrets.token_hex(4)}_"
    client = connect(warehouse_server)
    migrate(client, Databases.with_prefix(prefix))
    name = f"cp_{secrets.token_hex(5)}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    head, _, query = postgres_server.partition("?")
    url = f"{head.rsplit('/', 1)[0]}/{name}" + (f"?{query}" if query else "")
    # The API's own migrations: the snapshot reads the real schema.
    migrate_control_plane(url, warehouse_server, prefix, module_server_dir)
    yield Stores(warehouse_server, prefix, url)
    databases = Databases.with_prefix(prefix)
    for database in (databases.raw, f"{prefix}staging", databases.marts, databases.meta):
        client.command(f"DROP DATABASE IF EXISTS {database} SYNC")
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
