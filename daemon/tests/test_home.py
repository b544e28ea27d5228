"""``init``: the home directory, machine id and database; idempotent."""

from __future__ import annotations

import json
import stat
from dataclasses import replace
from pathlib import Path

import pytest

from halton_meter.home import CONFIG_TEMPLATE, HomeProblem, init_home, load_machine_id
from halton_meter.paths import MeterPaths
from halton_meter.settings import load_settings
from halton_meter.store import MIGRATIONS, connect, schema_version


def test_init_creates_everything_then_keeps_it(tmp_path: Path):
    paths = MeterPaths.resolve(tmp_path / "h")
    first = init_home(paths)
    assert {p.name for p in first.created} == {
        "config.toml",
        "machine.json",
        "mitmproxy-ca-cert.pem",
        "db.sqlite",
    }
    assert stat.S_IMODE(paths.home.stat().st_mode) == 0o700
    assert schema_version(connect(paths.db, readonly=True)) == len(MIGRATIONS)
    machine = json.loads(paths.machine.read_text())
    assert machine["machine_id"] == first.machine_id and len(first.machine_id) == 36

    paths.config.write_text(CONFIG_TEMPLATE.replace("port = 8090", "port = 9999"))
    second = init_home(paths)
    assert second.created == [] and second.machine_id == first.machine_id
    assert load_settings(paths.home).port == 9999  # the user's edit survives


def test_the_config_template_says_exactly_the_defaults(tmp_path: Path):
    templated, empty = tmp_path / "templated", tmp_path / "empty"
    templated.mkdir()
    empty.mkdir()
    (templated / "config.toml").write_text(CONFIG_TEMPLATE)
    a, b = load_settings(templated), load_settings(empty)
    assert replace(a, paths=b.paths, pricing_overrides=b.pricing_overrides) == b


def test_a_damaged_machine_file_is_reported_not_replaced(tmp_path: Path):
    paths = MeterPaths.resolve(tmp_path)
    paths.home.mkdir(exist_ok=True)
    paths.machine.write_text("{not json")
    with pytest.raises(HomeProblem, match="restore it from a backup"):
        load_machine_id(paths)
    with pytest.raises(HomeProblem):
        init_home(paths)
    assert paths.machine.read_text() == "{not json"
