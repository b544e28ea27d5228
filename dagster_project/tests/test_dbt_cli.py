"""The dbt profile comes from the warehouse settings; the database prefix travels as a var."""

from __future__ import annotations

import json

import pytest

from halton_pipelines.dbt_cli import (
    DEFAULT_THREADS,
    DbtProfileError,
    dbt_vars,
    profile,
    with_vars,
    write_profiles,
)
from halton_warehouse import WarehouseSettings


def test_profile_from_a_server_url() -> None:
    settings = WarehouseSettings(
        clickhouse_url="https://an%40alyst:s3cret@ch.example.com:8443/halton",
        clickhouse_database_prefix="t1_",
    )
    output = profile(settings)["halton"]["outputs"]["warehouse"]
    assert output | {"custom_settings": None} == {
        "type": "clickhouse", "driver": "http", "host": "ch.example.com", "port": 8443, "user": "an@alyst",
        "password": "s3cret", "secure": True, "schema": "t1_marts", "database_engine": "Atomic", "threads": DEFAULT_THREADS,
        "connect_timeout": 10, "send_receive_timeout": 3600, "custom_settings": None,
    }  # fmt: skip
    assert output["custom_settings"] == {"join_use_nulls": 1}
    assert dbt_vars(settings) == {"database_prefix": "t1_"}


def test_default_port_and_user() -> None:
    output = profile(WarehouseSettings(clickhouse_url="http://127.0.0.1"))["halton"]["outputs"]["warehouse"]
    assert (output["port"], output["user"], output["password"], output["secure"]) == (
        8123,
        "default",
        "",
        False,
    )


def test_in_process_engine_is_refused_with_what_to_do() -> None:
    with pytest.raises(DbtProfileError, match="halton-warehouse serve"):
        profile(WarehouseSettings(clickhouse_url="chdb:///var/lib/halton"))


def test_profiles_file_is_private(tmp_path) -> None:
    directory = write_profiles(WarehouseSettings(clickhouse_url="http://u:p@h:1"), tmp_path / "p")
    assert (directory / "profiles.yml").stat().st_mode & 0o777 == 0o600


def test_vars_merge_with_the_callers() -> None:
    args = with_vars(
        ["build", "--vars", "{as_of: '2026-11-01'}", "--select", "marts"], {"database_prefix": "x_"}
    )
    assert args[:3] == ["build", "--select", "marts"]
    assert json.loads(args[-1]) == {"database_prefix": "x_", "as_of": "2026-11-01"}


def test_help_says_what_halton_dbt_does_then_dbts_own_help(capfd) -> None:
    """`halton-dbt --help` once printed nothing and exited 1 (dbt's runner swallows --help)."""
    from halton_pipelines.dbt_cli import main

    assert main(["--help"]) == 0
    out = capfd.readouterr().out
    assert out.startswith("usage: halton-dbt")
    assert "Usage: dbt [OPTIONS] [COMMAND]" in out
    assert main(["build", "--help"]) == 0
    assert "--full-refresh" in capfd.readouterr().out
