"""Fixtures of the pipelines' tests: throwaway warehouse and control-plane databases, resources on them."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest
from psycopg import sql

from halton_api.postgres import migrate as migrate_control_plane
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


@pytest.fixture(scope="module")
def stores(warehouse_server: str, postgres_server: str) -> Iterator[Stores]:
    """One set of stores per test module (a module builds its marts once and reuses them)."""
    prefix = f"t{secrets.token_hex(4)}_"
    client = connect(warehouse_server)
    migrate(client, Databases.with_prefix(prefix))
    name = f"cp_{secrets.token_hex(5)}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    head, _, query = postgres_server.partition("?")
    url = f"{head.rsplit('/', 1)[0]}/{name}" + (f"?{query}" if query else "")
    migrate_control_plane(url)  # the API's own migrations: the snapshot reads the real schema
    yield Stores(warehouse_server, prefix, url)
    databases = Databases.with_prefix(prefix)
    for database in (databases.raw, f"{prefix}staging", databases.marts, databases.meta):
        client.command(f"DROP DATABASE IF EXISTS {database} SYNC")
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
