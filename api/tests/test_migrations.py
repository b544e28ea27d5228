"""Control-plane migrations: numbered files, applied once, idempotent, safe from two processes at once."""

from __future__ import annotations

import subprocess
import sys

import psycopg
import pytest

from halton_api import postgres

SCHEMA = """
SELECT table_name, column_name, data_type, is_nullable, column_default
FROM information_schema.columns WHERE table_schema = 'public' ORDER BY table_name, ordinal_position
"""


def _snapshot(url: str) -> tuple[list, list, list]:
    with psycopg.connect(url) as conn:
        columns = conn.execute(SCHEMA).fetchall()
        indexes = conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY indexname"
        ).fetchall()
        recorded = conn.execute(
            "SELECT version, name, checksum, applied_at FROM schema_migrations ORDER BY version"
        ).fetchall()
    return columns, indexes, recorded


def test_migration_files_are_numbered_uniquely() -> None:
    migrations = postgres.load_migrations()
    versions = [m.version for m in migrations]
    assert versions == sorted(set(versions))
    assert versions[0] == 1


def test_applying_twice_changes_nothing(postgres_url: str) -> None:
    applied = postgres.migrate(postgres_url)
    assert applied == [m.version for m in postgres.load_migrations()]
    before = _snapshot(postgres_url)
    assert postgres.migrate(postgres_url) == []
    assert _snapshot(postgres_url) == before
    tables = {row[0] for row in before[0]}
    assert {"users", "sessions", "workspaces", "memberships", "invitations", "devices", "api_keys", "projects",
            "cost_centers", "budgets", "audit_events", "schema_migrations"} <= tables  # fmt: skip


def test_an_edited_migration_is_refused(postgres_url: str) -> None:
    postgres.migrate(postgres_url)
    with psycopg.connect(postgres_url) as conn:
        conn.execute("UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1")
    with pytest.raises(postgres.MigrationError, match="append-only"):
        postgres.migrate(postgres_url)


def test_two_processes_migrating_at_once_apply_each_migration_once(postgres_url: str) -> None:
    script = "import sys; from halton_api import postgres; print(postgres.migrate(sys.argv[1]))"
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", script, postgres_url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=60) for p in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs
    applied = sorted(out.strip() for out, _ in outputs)
    expected = str([m.version for m in postgres.load_migrations()])
    assert applied == sorted(["[]", expected])
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] == len(
            postgres.load_migrations()
        )
