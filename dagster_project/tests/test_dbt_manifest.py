"""Dagster's dbt builds start from the parse state the manifest left, and never run `dbt --version` first."""

from __future__ import annotations

import shutil
from importlib.metadata import version
from pathlib import Path

from dagster_dbt import DbtCliResource
from packaging.version import Version

from halton_pipelines import dbt_cli
from halton_pipelines.dbt_manifest import PARTIAL_PARSE, manifest_path
from halton_pipelines.resources import HaltonDbtResource, InstalledDbtCliResource

URL = "http://127.0.0.1:8123"  # neither parsing nor listing connects


def test_a_build_parses_only_what_changed_since_the_manifest(tmp_path: Path, monkeypatch) -> None:
    project = tmp_path / "dbt"
    shutil.copytree(dbt_cli.project_dir(), project, ignore=shutil.ignore_patterns("target", "logs"))
    monkeypatch.setenv("HALTON_CLICKHOUSE_URL", URL)
    manifest = manifest_path(project)
    assert manifest.with_name(PARTIAL_PARSE).is_file()

    resource = HaltonDbtResource(clickhouse_url=URL, project_dir=str(project))
    invocation = resource.cli(["ls", "--select", "daily_spend"]).wait()
    log = (invocation.target_path / "dbt.log").read_text()
    assert "Unable to do partial parsing" not in log
    assert "Partial parsing enabled" in log

    # A project file edited since: the manifest is parsed again, and its state with it.
    state = manifest.with_name(PARTIAL_PARSE).stat().st_mtime_ns
    model = project / "models" / "marts" / "daily_spend.sql"
    model.write_text(model.read_text() + "\n")
    manifest_path(project)
    assert manifest.with_name(PARTIAL_PARSE).stat().st_mtime_ns > state


def test_dbts_version_is_the_installed_one_without_asking_dbt() -> None:
    # dagster-dbt's resource asks `dbt --version` through this property; the override must still replace it.
    assert "_cli_version" in vars(DbtCliResource)
    resource = InstalledDbtCliResource(
        project_dir=str(dbt_cli.project_dir()), dbt_executable=dbt_cli.dbt_executable()
    )
    assert resource._cli_version == Version(version("dbt-core"))
