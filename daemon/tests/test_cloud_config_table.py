"""config.toml's [cloud] table: edited in place, everything else kept byte for byte; placeholder heal."""

from __future__ import annotations

import logging
import tomllib
from pathlib import Path

import pytest

from halton_meter.cloud.config_table import (
    ConfigEditError,
    heal_placeholder_base_url,
    is_placeholder,
    set_cloud_keys,
)
from halton_meter.home import CONFIG_TEMPLATE
from halton_meter.paths import MeterPaths
from halton_meter.settings import SettingsError, load_settings

USER_FILE = """\
# my settings, hand-written
[proxy]
port = 9000  # moved off 8090

[cloud]
# pairing turns this on
enabled = false
# base_url = "https://api.haltonmeter.com"

[log]
level = "DEBUG"
"""


def test_only_the_cloud_table_changes(tmp_path: Path):
    path = tmp_path / "config.toml"
    path.write_text(USER_FILE)
    path.chmod(0o640)
    set_cloud_keys(path, {"enabled": True, "base_url": "https://api.haltonmeter.com", "workspace_id": "ws-1"})
    text = path.read_text()
    assert text.startswith("# my settings, hand-written\n[proxy]\nport = 9000  # moved off 8090\n")
    assert "# pairing turns this on\nenabled = true\n" in text
    assert '# base_url = "https://api.haltonmeter.com"' in text  # the comment stays
    assert text.endswith('[log]\nlevel = "DEBUG"\n')
    parsed = tomllib.loads(text)
    assert parsed["cloud"] == {
        "enabled": True,
        "base_url": "https://api.haltonmeter.com",
        "workspace_id": "ws-1",
    }
    assert parsed["proxy"]["port"] == 9000 and path.stat().st_mode & 0o777 == 0o640

    set_cloud_keys(path, {"enabled": False})
    parsed = tomllib.loads(path.read_text())
    assert parsed["cloud"]["enabled"] is False and parsed["cloud"]["workspace_id"] == "ws-1"
    set_cloud_keys(path, {"workspace_id": None})
    assert "workspace_id" not in tomllib.loads(path.read_text())["cloud"]


def test_the_table_is_added_when_missing(tmp_path: Path):
    path = tmp_path / "config.toml"
    path.write_text("[proxy]\nport = 9000")  # no trailing newline
    set_cloud_keys(path, {"enabled": True, "base_url": "http://127.0.0.1:9"})
    parsed = tomllib.loads(path.read_text())
    assert parsed == {"proxy": {"port": 9000}, "cloud": {"enabled": True, "base_url": "http://127.0.0.1:9"}}
    missing = tmp_path / "new.toml"
    set_cloud_keys(missing, {"enabled": False})
    assert tomllib.loads(missing.read_text()) == {"cloud": {"enabled": False}}


def test_the_init_template_is_editable(tmp_path: Path):
    path = tmp_path / "config.toml"
    path.write_text(CONFIG_TEMPLATE)
    set_cloud_keys(path, {"enabled": True, "workspace_id": "w"})
    assert tomllib.loads(path.read_text())["cloud"]["enabled"] is True
    assert (
        path.read_text().replace('enabled = true\nworkspace_id = "w"\n', "enabled = false\n")
        == CONFIG_TEMPLATE
    )


def test_an_inline_cloud_table_is_refused_with_the_fix(tmp_path: Path):
    path = tmp_path / "config.toml"
    path.write_text("cloud = { enabled = false }\n")
    with pytest.raises(ConfigEditError, match="by hand"):
        set_cloud_keys(path, {"enabled": True})
    assert path.read_text() == "cloud = { enabled = false }\n"  # untouched


@pytest.mark.parametrize(
    ("url", "placeholder"),
    [
        ("https://api.halton.test", True),
        ("https://api.example", True),
        ("http://cloud.invalid:8000/", True),
        ("https://meter.local", True),
        ("https://api.haltonmeter.com", False),
        ("http://127.0.0.1:8000", False),
        ("https://testing.example.com", False),
    ],
)
def test_placeholder_hosts(url: str, placeholder: bool):
    assert is_placeholder(url) is placeholder


def test_a_placeholder_the_meter_wrote_is_healed_and_logged(tmp_path: Path, caplog):
    paths = MeterPaths.resolve(tmp_path)
    paths.config.write_text(
        '[cloud]\nenabled = true\nbase_url = "https://api.halton.test"  # dev\n'
        'base_url_written_by_meter = "https://api.halton.test"\n'
    )
    with caplog.at_level(logging.WARNING, logger="halton_meter.cloud.config_table"):
        assert heal_placeholder_base_url(paths) == "https://api.halton.test"
    table = tomllib.loads(paths.config.read_text())["cloud"]
    assert table["base_url"] == table["base_url_written_by_meter"] == "https://api.haltonmeter.com"
    assert "healed from 'https://api.halton.test' to 'https://api.haltonmeter.com'" in caplog.text
    assert heal_placeholder_base_url(paths) is None


@pytest.mark.parametrize(
    "table",
    [
        'base_url = "http://cloudbox.local:18400"\n',  # chosen at pairing or by hand: no marker
        # The meter once wrote its default, then the user set a URL of their own.
        'base_url = "http://cloudbox.local:18400"\nbase_url_written_by_meter = "https://api.halton.test"\n',
    ],
)
def test_a_placeholder_the_user_chose_is_kept_and_logged(tmp_path: Path, caplog, table: str):
    paths = MeterPaths.resolve(tmp_path)
    paths.config.write_text("[cloud]\nenabled = true\n" + table)
    before = paths.config.read_text()
    with caplog.at_level(logging.WARNING, logger="halton_meter.cloud.config_table"):
        assert heal_placeholder_base_url(paths) is None
    assert paths.config.read_text() == before
    assert "'http://cloudbox.local:18400'" in caplog.text and "kept as it is" in caplog.text


def test_settings_know_who_chose_the_base_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("HALTON_METER_CLOUD_URL", raising=False)
    paths = MeterPaths.resolve(tmp_path)
    paths.config.write_text("[cloud]\nenabled = false\n")
    assert load_settings(paths.home).cloud_base_url_by_meter is True  # the default: nobody chose
    paths.config.write_text('[cloud]\nbase_url = "http://cloudbox.local:18400"\n')
    assert load_settings(paths.home).cloud_base_url_by_meter is False  # config.toml
    paths.config.write_text(
        '[cloud]\nbase_url = "https://api.halton.test"\nbase_url_written_by_meter = "https://api.halton.test"\n'
    )
    assert load_settings(paths.home).cloud_base_url_by_meter is True
    monkeypatch.setenv("HALTON_METER_CLOUD_URL", "http://cloudbox.local:18400")
    assert load_settings(paths.home).cloud_base_url_by_meter is False  # the environment


def test_cloud_settings_are_validated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("HALTON_METER_CLOUD_URL", raising=False)
    paths = MeterPaths.resolve(tmp_path)
    paths.config.write_text(
        '[cloud]\nenabled = true\nbase_url = "http://127.0.0.1:9/"\ndashboard_origin = "HTTP://127.0.0.1:5"\n'
        "batch_rows = 10\nsync_interval_seconds = 0.5\n"
    )
    settings = load_settings(paths.home)
    assert (
        settings.cloud_base_url == "http://127.0.0.1:9"
        and settings.cloud_dashboard_origin == "http://127.0.0.1:5"
    )
    assert settings.cloud_batch_rows == 10 and settings.cloud_sync_interval == 0.5
    monkeypatch.setenv("HALTON_METER_CLOUD_URL", "https://self-hosted.corp")
    assert load_settings(paths.home).cloud_base_url == "https://self-hosted.corp"
    monkeypatch.setenv("HALTON_METER_CLOUD_URL", "ftp://nope")
    with pytest.raises(SettingsError, match="HALTON_METER_CLOUD_URL"):
        load_settings(paths.home)
    monkeypatch.delenv("HALTON_METER_CLOUD_URL")
    for bad, where in (
        ('base_url = "api.haltonmeter.com"', r"\[cloud\] base_url: .*http\(s\) URL"),
        (
            'dashboard_origin = "https://app.haltonmeter.com/connect"',
            r"\[cloud\] dashboard_origin: .*without a path",
        ),
        ("batch_rows = 9000", r"\[cloud\] batch_rows"),
        ("enable = true", r"\[cloud\] enable: unknown key"),
    ):
        paths.config.write_text(f"[cloud]\n{bad}\n")
        with pytest.raises(SettingsError, match=where):
            load_settings(paths.home)
