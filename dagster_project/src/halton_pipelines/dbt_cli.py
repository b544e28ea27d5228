"""dbt for the `halton` project, configured from the warehouse settings.

The dbt profile is generated from `WarehouseSettings` (`HALTON_CLICKHOUSE_URL`,
`HALTON_CLICKHOUSE_DATABASE_PREFIX`): no hand-kept `profiles.yml`, and the database prefix reaches the models
as the `database_prefix` var, so tests build on throwaway databases. `halton-dbt ARGS` runs dbt with them:

    uv run halton-dbt build              # everything, with tests
    uv run halton-dbt docs               # generate the docs, then serve them on http://127.0.0.1:8080
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import yaml

from halton_warehouse import WarehouseSettings

PROFILE_NAME = "halton"
TARGET_NAME = "warehouse"
# Settings every dbt session gets: standard SQL outer joins (NULL, not a default value, when unmatched).
SESSION_SETTINGS: dict[str, Any] = {"join_use_nulls": 1}
# One dbt thread per core: the warehouse shares the machine, and more threads only make the models wait on
# each other (on 2 cores an incremental build takes 13 s with 2 threads, 16 s with 4).
DEFAULT_THREADS = max(2, min(8, os.cpu_count() or 2))


class DbtProfileError(ValueError):
    """The warehouse settings cannot be turned into a dbt profile."""


def project_dir() -> Path:
    """The dbt project: `HALTON_DBT_PROJECT_DIR`, else `dbt/` at the root of this checkout."""
    configured = os.environ.get("HALTON_DBT_PROJECT_DIR")
    if configured:
        return Path(configured).resolve()
    return Path(__file__).resolve().parents[3] / "dbt"


def dbt_executable() -> str:
    """The `dbt` installed beside the running interpreter: started as `.venv/bin/halton-cloud` rather than
    through `uv run`, the environment's `bin/` is not on PATH, and a bare `dbt` would not be found."""
    beside = Path(sys.executable).with_name("dbt")
    return str(beside) if beside.is_file() else shutil.which("dbt") or "dbt"


def profile(settings: WarehouseSettings, *, threads: int = DEFAULT_THREADS) -> dict[str, Any]:
    """The `profiles.yml` content for `settings` (dbt-clickhouse over the HTTP interface)."""
    parts = urlsplit(settings.clickhouse_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DbtProfileError(
            "dbt reaches the warehouse over the ClickHouse HTTP interface, so HALTON_CLICKHOUSE_URL must be "
            f"http(s)://user:pass@host:port (got scheme {parts.scheme!r}); for the embedded warehouse, start "
            "its server (`halton-warehouse serve`) and point the URL at it"
        )
    secure = parts.scheme == "https"
    output: dict[str, Any] = {
        "type": "clickhouse",
        "driver": "http",
        "host": parts.hostname,
        "port": parts.port or (8443 if secure else 8123),
        "user": unquote(parts.username) if parts.username else "default",
        "password": unquote(parts.password) if parts.password else "",
        "secure": secure,
        "schema": settings.databases.marts,
        "database_engine": "Atomic",
        "threads": threads,
        "connect_timeout": 10,
        "send_receive_timeout": 3600,
        "custom_settings": dict(SESSION_SETTINGS),
    }
    return {PROFILE_NAME: {"target": TARGET_NAME, "outputs": {TARGET_NAME: output}}}


def write_profiles(settings: WarehouseSettings, directory: Path, *, threads: int = DEFAULT_THREADS) -> Path:
    """Write `profiles.yml` (it may hold a password: owner-only) into `directory`; returns the directory."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "profiles.yml"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        yaml.safe_dump(profile(settings, threads=threads), handle, sort_keys=False)
    return directory


def dbt_vars(settings: WarehouseSettings, **extra: Any) -> dict[str, Any]:
    """The vars every invocation passes: the database prefix, plus `extra` (e.g. as_of)."""
    return {"database_prefix": settings.clickhouse_database_prefix, **extra}


def with_vars(args: list[str], variables: dict[str, Any]) -> list[str]:
    """`args` with `--vars` merged into any the caller gave."""
    merged = dict(variables)
    out: list[str] = []
    skip = False
    for i, arg in enumerate(args):
        if skip:
            skip = False
            continue
        if arg == "--vars" and i + 1 < len(args):
            merged.update(yaml.safe_load(args[i + 1]) or {})
            skip = True
            continue
        out.append(arg)
    return [*out, "--vars", json.dumps(merged)]


USAGE = """usage: halton-dbt DBT-COMMAND [DBT-OPTIONS]

dbt on the `halton` project against the warehouse this machine's cloud uses: HALTON_CLICKHOUSE_URL when set,
else the embedded warehouse `halton-cloud up` runs under HALTON_DATA_DIR (default ~/.halton-cloud), on the
port it got and with its admin login. The profile is generated; --project-dir and --profiles-dir are set.

  halton-dbt build     every model, with its tests
  halton-dbt docs      generate the docs, then serve them on http://127.0.0.1:8080

dbt's own help follows (`halton-dbt COMMAND --help` for one command's options).
"""


def main(argv: list[str] | None = None) -> int:
    """`halton-dbt ARGS`: dbt on the `halton` project against the configured warehouse."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or any(arg in ("-h", "--help") for arg in args) or args[0] == "help":
        # dbt's programmatic runner answers --help with nothing and a failure: ask the dbt executable.
        print(USAGE, flush=True)
        rest = [arg for arg in args if arg != "help"] or ["--help"]
        return subprocess.run([dbt_executable(), *rest], check=False).returncode

    from dbt.cli.main import dbtRunner

    settings = WarehouseSettings()
    print(f"halton-dbt: warehouse {_redacted(settings.clickhouse_url)}", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(prefix="halton-dbt-") as profiles:
        write_profiles(settings, Path(profiles))
        common = ["--project-dir", str(project_dir()), "--profiles-dir", profiles]
        runs = (
            [["docs", "generate"], ["docs", "serve", "--host", "127.0.0.1"]] if args == ["docs"] else [args]
        )
        for run in runs:
            result = dbtRunner().invoke(with_vars([*run, *common], dbt_vars(settings)))
            if not result.success:
                return 1
    return 0


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return url.replace(f":{parts.password}@", ":***@", 1)


if __name__ == "__main__":
    raise SystemExit(main())
