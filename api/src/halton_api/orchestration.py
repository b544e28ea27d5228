"""Dagster as deployed (its production layout), which `halton-cloud up` runs on one machine:

- run, event-log and schedule storage in PostgreSQL: the control plane's server, a database of its own
  (`<control plane's database>_dagster`), so the webserver, the daemon and every run worker share one history, whichever host they run on;
- the run queue (`QueuedRunCoordinator`): runs tagged `halton/dbt` (every job that runs dbt) go one at a time,
  whoever asks (the sensor, a schedule, someone in the UI), so two marts builds never overlap;
- the code location as its own process (`dagster code-server start`), which the webserver and the daemon
  reach over gRPC (`workspace.yaml`); a run worker is started by the code server.

`DagsterDeployment` writes the instance and workspace files under DAGSTER_HOME and starts the three processes,
each in a process group of its own (`process_groups`), and stops them with everything they started.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from halton_api.process_groups import start_group, stop_group

DAGSTER_DATABASE_SUFFIX = "_dagster"
# Must equal halton_pipelines.defs.dbt.DBT_RUN_TAG (a test holds them equal: the two never import each other).
DBT_RUN_TAG = "halton/dbt"
CODE_LOCATION = "halton"
# Runs in flight at once besides the dbt limit: billing pulls and recommendations beside one dbt build.
MAX_CONCURRENT_RUNS = 4
CODE_SERVER_WAIT_SECONDS = 120

INSTANCE_YAML = f"""\
# Written by halton-cloud (halton_api.orchestration); DAGSTER_POSTGRES_URL names the database.
telemetry:
  enabled: false
storage:
  postgres:
    postgres_url:
      env: DAGSTER_POSTGRES_URL
run_coordinator:
  module: dagster._core.run_coordinator
  class: QueuedRunCoordinator
  config:
    max_concurrent_runs: {MAX_CONCURRENT_RUNS}
    tag_concurrency_limits:
      - key: "{DBT_RUN_TAG}"
        limit: 1
"""


def dagster_database_url(control_plane_url: str) -> str:
    """The control plane's server, database `<control plane's>_dagster`, created if it does not exist."""
    params = conninfo_to_dict(control_plane_url)
    params["dbname"] = f"{params.get('dbname') or 'postgres'}{DAGSTER_DATABASE_SUFFIX}"
    with psycopg.connect(control_plane_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (params["dbname"],)).fetchone()
        if exists is None:
            with contextlib.suppress(psycopg.errors.DuplicateDatabase):  # another `up` made it meanwhile
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(params["dbname"])))
    return _as_url(params)


def _as_url(params: dict) -> str:
    """A URL for SQLAlchemy, which dagster-postgres uses (it takes no key=value strings). psycopg2, the driver
    dagster-postgres is made for: SQLAlchemy 2.1 would otherwise pick psycopg 3, on which the webserver's
    queries fail with "the connection is closed"."""
    from urllib.parse import quote, urlencode

    user = quote(str(params.pop("user", "postgres")), safe="")
    password = quote(str(params.pop("password", "")), safe="")
    host = str(params.pop("host", ""))
    port = params.pop("port", None)
    dbname = params.pop("dbname")
    if host.startswith("/"):  # a Unix socket (the embedded server): in the query, where libpq reads it
        params["host"] = host
        host = ""
    netloc = f"{user}:{password}@{host}{f':{port}' if port and host else ''}"
    if port and not host:
        params["port"] = port
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return f"postgresql+psycopg2://{netloc}/{dbname}{f'?{query}' if query else ''}"


def workspace_yaml(grpc_port: int) -> str:
    return (
        "load_from:\n"
        "  - grpc_server:\n"
        "      host: 127.0.0.1\n"
        f"      port: {grpc_port}\n"
        f"      location_name: {CODE_LOCATION}\n"
    )


def write_instance(home: Path, grpc_port: int) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(INSTANCE_YAML)
    (home / "workspace.yaml").write_text(workspace_yaml(grpc_port))


@dataclass
class DagsterDeployment:
    """The code server, the webserver (UI on 127.0.0.1:`ui_port`) and the daemon over one DAGSTER_HOME.

    `env` must hold what the definitions read (HALTON_DATABASE_URL, HALTON_CLICKHOUSE_URL, …) and
    DAGSTER_POSTGRES_URL. The webserver and the daemon start once the code server listens, from a thread:
    the caller goes on starting the rest meanwhile."""

    home: Path
    env: dict[str, str]
    ui_port: int
    grpc_port: int
    log: Path
    _groups: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stopping: bool = False
    _starter: threading.Thread | None = None

    def start(self) -> None:
        write_instance(self.home, self.grpc_port)
        bin_dir = Path(sys.executable).parent
        env = {**self.env, "DAGSTER_HOME": str(self.home)}
        self._start([str(bin_dir / "dagster"), "code-server", "start", "-m", "halton_pipelines.definitions",
                     "--location-name", CODE_LOCATION, "-h", "127.0.0.1", "-p", str(self.grpc_port)], env)  # fmt: skip
        workspace = str(self.home / "workspace.yaml")

        def then_the_rest() -> None:
            if not _wait_for_port(self.grpc_port, CODE_SERVER_WAIT_SECONDS, lambda: self._stopping):
                return
            self._start([str(bin_dir / "dagster-daemon"), "run", "-w", workspace], env)
            self._start([str(bin_dir / "dagster-webserver"), "-w", workspace, "-h", "127.0.0.1",
                         "-p", str(self.ui_port)], env)  # fmt: skip

        self._starter = threading.Thread(target=then_the_rest, name="dagster-start", daemon=True)
        self._starter.start()

    def _start(self, command: list[str], env: dict[str, str]) -> None:
        with self._lock:
            if not self._stopping:
                self._groups.append(start_group(command, env=env, log=self.log))

    def stop(self) -> None:
        """Stop the webserver, the daemon, then the code server (and the runs it started), each group whole."""
        with self._lock:
            self._stopping = True
        if self._starter is not None:
            self._starter.join()
        for group in reversed(self._groups):
            stop_group(group)
        self._groups.clear()


def _wait_for_port(port: int, timeout: float, stopping) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not stopping():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            time.sleep(0.2)
    return False
