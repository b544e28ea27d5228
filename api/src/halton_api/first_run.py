"""The terminal's side of a first run: say when the demo is in, when the marts are built from it, and end
with one line that says where to go and how to sign in, printed only once the dashboards have the data.

`up --demo` loads the demo in a child process; once it is in, the watch tells the pipelines to build the
marts (`halton_api.dagster_processes`: the first build, then `dagster dev`). The watch asks the warehouse
itself (not Dagster) whether the dashboards' marts cover everything ingested, so the final line is true
whoever built them.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from clickhouse_connect.driver.exceptions import ClickHouseError

from halton_warehouse import Databases, connect

if TYPE_CHECKING:
    from halton_api.dagster_processes import DagsterProcesses

POLL_SECONDS = 1.0
# The demo loader is watched closely: the marts build starts when it exits.
LOADER_POLL_SECONDS = 0.1


class FirstRunWatch:
    """Waits for the demo loader to finish, then for the marts to cover it; reports through `say`."""

    def __init__(
        self,
        *,
        loader: Callable[[], subprocess.Popen[bytes] | None],
        warehouse_url: str,
        databases: Databases,
        pipelines: DagsterProcesses | None,
        final_line: Callable[[], str],
        say: Callable[[str], None],
        started_at: float,
    ) -> None:
        """`started_at`: when `up` started (time.monotonic()), what the progress lines count from."""
        self._loader = loader
        self._warehouse_url = warehouse_url
        self._databases = databases
        self._pipelines = pipelines
        self._final_line = final_line
        self._say = say
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="first-run-watch", daemon=True)
        self.started_at = started_at

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _wait(self, condition: Callable[[], bool], every: float = POLL_SECONDS) -> bool:
        """Poll `condition` until it holds (True) or the watch is stopped (False)."""
        while not self._stopped.is_set():
            if condition():
                return True
            self._stopped.wait(every)
        return False

    def _elapsed(self) -> str:
        return f"+{time.monotonic() - self.started_at:.0f} s"

    def _run(self) -> None:
        if not self._wait(
            lambda: (p := self._loader()) is not None and p.poll() is not None, LOADER_POLL_SECONDS
        ):
            return
        process = self._loader()
        loaded = process is not None and process.returncode == 0
        if self._pipelines is not None:
            self._pipelines.build(loaded)
        if not loaded:
            self._say("the demo did not load (see the lines above); the dashboards stay empty")
            return
        if self._pipelines is None:
            self._say("demo in the warehouse; without Dagster no marts are built: run `halton-dbt build`")
            self._say(self._final_line())
            return
        self._say(f"{self._elapsed()}  demo in the warehouse; building the marts from it…")
        client = connect(self._warehouse_url)
        try:
            if not self._wait(lambda: self._dashboards_ready(client)):
                return
            self._say(f"{self._elapsed()}  marts built: the dashboards have the demo's figures")
            if self._history_ready(client):
                self._say(f"{self._elapsed()}  clusters and optimisation are in too")
                self._say(self._final_line())
                return
            self._say(self._final_line())
            if self._wait(lambda: self._history_ready(client)):
                self._say(f"{self._elapsed()}  clusters and optimisation are in too")
        finally:
            client.close()

    def _ask(self, client, sql: str) -> bool:
        try:
            return bool(client.query(sql).result_rows[0][0])
        except ClickHouseError:  # a mart not built yet (unknown table), or the warehouse stopping
            return False

    def _dashboards_ready(self, client) -> bool:
        raw, marts = self._databases.raw, self._databases.marts
        return self._ask(
            client,
            f"SELECT (SELECT max(last_ingested_at) FROM {marts}.daily_spend) "
            f">= (SELECT max(ingested_at) FROM {raw}.requests_dedup) "
            f"AND (SELECT count() FROM {marts}.reconciliation) > 0",
        )

    def _history_ready(self, client) -> bool:
        marts = self._databases.marts
        return self._ask(
            client,
            f"SELECT (SELECT count() FROM {marts}.prompt_clusters) > 0 "
            f"AND (SELECT count() FROM {marts}.recommendations) > 0",
        )
