"""The dbt manifest Dagster builds its dbt assets from, re-parsed whenever the project changed.

The parse also leaves dbt's partial-parsing state (`target/partial_parse.msgpack`) where dagster-dbt looks
for it: each build copies it into its own target and parses only what changed since, instead of the whole
project (a third of a first build's start-up, bench/RESULTS.md "First run"). dbt itself checks that the
state matches the project, the vars, the profile and its version, and parses in full when not.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from halton_pipelines import dbt_cli
from halton_warehouse import WarehouseSettings

log = logging.getLogger(__name__)

PARTIAL_PARSE = "partial_parse.msgpack"
_PROJECT_FILES = ("dbt_project.yml",)
_PROJECT_DIRS = ("models", "macros", "tests")


class DbtManifestError(RuntimeError):
    """dbt could not parse the project."""


def manifest_path(project_dir: Path | None = None) -> Path:
    """`target/manifest.json` of the dbt project, parsed again first when any project file is newer."""
    project = project_dir or dbt_cli.project_dir()
    manifest = project / "target" / "manifest.json"
    if (
        manifest.exists()
        and manifest.with_name(PARTIAL_PARSE).exists()
        and manifest.stat().st_mtime >= _newest_source(project)
    ):
        return manifest
    _parse(project, manifest)
    return manifest


def _newest_source(project: Path) -> float:
    newest = max((project / name).stat().st_mtime for name in _PROJECT_FILES)
    for folder in _PROJECT_DIRS:
        for path in (project / folder).rglob("*"):
            if path.is_file():
                newest = max(newest, path.stat().st_mtime)
    return newest


def _parse(project: Path, manifest: Path) -> None:
    """`dbt parse` into a scratch target, then move the manifest into place atomically (several processes
    may load the definitions at once)."""
    executable = dbt_cli.dbt_executable()
    settings = WarehouseSettings()
    if not settings.clickhouse_url.startswith(("http://", "https://")):
        settings = WarehouseSettings(clickhouse_url="http://127.0.0.1:8123")  # parsing never connects
    with tempfile.TemporaryDirectory(prefix="halton-dbt-parse-") as scratch:
        profiles = dbt_cli.write_profiles(settings, Path(scratch) / "profiles")
        target = Path(scratch) / "target"
        args = [
            executable, "parse", "--project-dir", str(project), "--profiles-dir", str(profiles),
            "--target-path", str(target), *dbt_cli.with_vars([], dbt_cli.dbt_vars(settings)),
        ]  # fmt: skip
        env = {**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
        result = subprocess.run(args, capture_output=True, text=True, env=env, cwd=project)
        if result.returncode != 0:
            raise DbtManifestError(
                f"dbt parse failed for {project}:\n{result.stdout[-4000:]}{result.stderr[-2000:]}"
            )
        manifest.parent.mkdir(parents=True, exist_ok=True)
        # The state first: a manifest newer than the project is what says both are current.
        for name, destination in (
            (PARTIAL_PARSE, manifest.with_name(PARTIAL_PARSE)),
            ("manifest.json", manifest),
        ):
            staged = destination.with_name(f".{name}.{os.getpid()}")
            shutil.copyfile(target / name, staged)
            os.replace(staged, destination)
    log.info("parsed the dbt project into %s", manifest)
