"""One settings object: production needs a real secret; development makes and keeps one."""

from __future__ import annotations

import stat
from datetime import date
from pathlib import Path

import pytest

from halton_api.cloud_settings import (
    DEFAULT_MAX_BATCH_BYTES,
    DEFAULT_MAX_BATCH_ROWS,
    SLOW_CLIENT_PROTOCOL,
    CloudSettings,
    SettingsError,
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("HALTON_"):
            monkeypatch.delenv(name)


@pytest.mark.parametrize("secret", [None, "changethis", "secret", "short-but-not-a-placeholder"])
def test_production_refuses_a_missing_or_placeholder_secret(tmp_path: Path, secret: str | None) -> None:
    with pytest.raises((SettingsError, ValueError), match="HALTON_SECRET_KEY"):
        CloudSettings(env="production", data_dir=tmp_path, secret_key=secret)


def test_production_takes_a_real_secret_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HALTON_ENV", "production")
    monkeypatch.setenv("HALTON_SECRET_KEY", "k" * 48)
    monkeypatch.setenv("HALTON_DATABASE_URL", "postgresql://db.internal/halton")
    monkeypatch.setenv("HALTON_CLICKHOUSE_URL", "https://ch.internal:8443/")
    monkeypatch.setenv("HALTON_MAX_BATCH_ROWS", "1000")
    settings = CloudSettings(data_dir=tmp_path)
    assert settings.secret() == b"k" * 48
    assert settings.database_url == "postgresql://db.internal/halton"
    assert settings.warehouse.clickhouse_url == "https://ch.internal:8443/"
    assert settings.max_batch_rows == 1000
    assert not (tmp_path / "secret.key").exists()


def test_development_generates_one_secret_and_keeps_it(tmp_path: Path) -> None:
    first = CloudSettings(data_dir=tmp_path / "cloud")
    second = CloudSettings(data_dir=tmp_path / "cloud")
    assert first.secret() == second.secret() and len(first.secret()) >= 32
    mode = stat.S_IMODE((tmp_path / "cloud" / "secret.key").stat().st_mode)
    assert mode == 0o600


def test_documented_defaults(tmp_path: Path) -> None:
    settings = CloudSettings(data_dir=tmp_path)
    assert (settings.max_batch_rows, settings.max_batch_bytes) == (
        DEFAULT_MAX_BATCH_ROWS,
        DEFAULT_MAX_BATCH_BYTES,
    )
    assert (DEFAULT_MAX_BATCH_ROWS, DEFAULT_MAX_BATCH_BYTES) == (5_000, 8 * 1024 * 1024)
    assert settings.database_url is None  # the embedded PostgreSQL is started under the data dir
    assert CloudSettings(data_dir=Path("~/x")).data_dir == Path.home() / "x"


def test_forwarded_headers_are_believed_from_no_one_unless_proxies_are_listed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert CloudSettings(data_dir=tmp_path).uvicorn_options() == {
        "http": SLOW_CLIENT_PROTOCOL,
        "proxy_headers": False,
    }
    monkeypatch.setenv("HALTON_FORWARDED_ALLOW_IPS", "10.0.0.5, 10.0.1.0/24,fd00::1")
    listed = CloudSettings(data_dir=tmp_path)
    assert listed.uvicorn_options() == {
        "http": SLOW_CLIENT_PROTOCOL,
        "proxy_headers": True,
        "forwarded_allow_ips": ["10.0.0.5", "10.0.1.0/24", "fd00::1"],
    }
    monkeypatch.setenv("HALTON_FORWARDED_ALLOW_IPS", "10.0.0.5,proxy.internal")
    with pytest.raises(ValueError, match=r"'proxy\.internal' is not an IP address or network"):
        CloudSettings(data_dir=tmp_path)


def test_the_ingestion_window_and_project_quota_have_documented_defaults_and_bounds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = CloudSettings(data_dir=tmp_path)
    assert settings.ingest_earliest_date == date(2020, 1, 1)
    assert settings.ingest_max_future_skew_hours == 24
    assert settings.device_new_projects_per_hour == 100
    monkeypatch.setenv("HALTON_INGEST_EARLIEST_DATE", "2023-06-01")
    monkeypatch.setenv("HALTON_INGEST_MAX_FUTURE_SKEW_HOURS", "2.5")
    monkeypatch.setenv("HALTON_DEVICE_NEW_PROJECTS_PER_HOUR", "20")
    settings = CloudSettings(data_dir=tmp_path)
    assert (
        settings.ingest_earliest_date,
        settings.ingest_max_future_skew_hours,
        settings.device_new_projects_per_hour,
    ) == (date(2023, 6, 1), 2.5, 20)
    # The marts' DateTime hours start in 1970: an earlier window would let rows in that they cannot hold.
    with pytest.raises(ValueError, match="ingest_earliest_date"):
        CloudSettings(data_dir=tmp_path, ingest_earliest_date=date(1969, 12, 31))
    with pytest.raises(ValueError, match="ingest_max_future_skew_hours"):
        CloudSettings(data_dir=tmp_path, ingest_max_future_skew_hours=24 * 367)
    with pytest.raises(ValueError, match="device_new_projects_per_hour"):
        CloudSettings(data_dir=tmp_path, device_new_projects_per_hour=0)
