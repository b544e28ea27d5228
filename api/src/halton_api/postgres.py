"""The control plane's PostgreSQL: the embedded server, the connection pool and schema migrations.

Migrations are numbered SQL files in `halton_api/migrations/` (`NNNN_lower_snake.sql`), applied in order
inside one transaction that holds an advisory lock, and recorded in `schema_migrations` with a checksum.
Two processes migrating at once serialise on the lock; the second finds nothing left to do.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from halton_warehouse.migrate import Migration, MigrationError
from halton_warehouse.migrate import load_migrations as load_files

log = logging.getLogger(__name__)

# Any constant works; it only has to be the same in every process that migrates this database.
MIGRATION_LOCK_KEY = 0x48414C54  # "HALT"


def load_migrations() -> list[Migration]:
    """The control plane's migration files, under the same naming rules as the warehouse's."""
    return load_files("halton_api.migrations")


def migrate(url: str) -> list[int]:
    """Apply every migration not yet recorded in the database at `url`; returns the versions applied now."""
    with psycopg.connect(url) as conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_KEY,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        recorded = dict(conn.execute("SELECT version, checksum FROM schema_migrations").fetchall())
        applied: list[int] = []
        for migration in load_migrations():
            if migration.version in recorded:
                if recorded[migration.version] != migration.checksum:
                    raise MigrationError(
                        f"control-plane migration {migration.version:04d}_{migration.name} was changed after it "
                        "was applied; migrations are append-only: add a new file instead"
                    )
                continue
            log.info("applying control-plane migration %04d_%s", migration.version, migration.name)
            conn.execute(migration.sql)
            conn.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                (migration.version, migration.name, migration.checksum),
            )
            applied.append(migration.version)
        return applied


def check(url: str) -> None:
    """Raise unless the database answers (used by `halton-cloud` before it starts anything else)."""
    with psycopg.connect(url, connect_timeout=5) as conn:
        conn.execute("SELECT 1")


@contextmanager
def embedded_postgres(data_dir: Path) -> Iterator[str]:
    """Start (or join) the PostgreSQL from the pgserver wheel under `data_dir/postgres`; yields its URI.

    The server is stopped when the block ends, unless another process still holds it.
    """
    import pgserver

    data_dir.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(data_dir / "postgres", cleanup_mode="stop")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


def open_pool(url: str, *, min_size: int, max_size: int) -> AsyncConnectionPool:
    """An async pool of dict-row connections; call `await pool.open()` (done by the app's lifespan)."""
    return AsyncConnectionPool(
        url,
        min_size=min_size,
        max_size=max_size,
        kwargs={"row_factory": dict_row},
        # Test each connection as it is lent: after a database restart, requests get a fresh one, not an error.
        check=AsyncConnectionPool.check_connection,
        # A request waits at most this long for a connection, then answers 503 with Retry-After.
        timeout=10.0,
        open=False,
        name="halton-control-plane",
    )
