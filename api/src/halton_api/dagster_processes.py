"""The pipelines `halton-cloud up` runs: Dagster as deployed (`halton_api.orchestration`), and on a first run
with the demo, the first marts build before it.

With the demo, Dagster's processes (webserver, daemon, code server: each loads Dagster, the code server the
definitions too) would start beside the demo's ingestion and take the CPU it needs, and its daemon would
build the marts only after a sensor tick, the run's creation, the run queue and a new run worker (bench/
RESULTS.md, "First run"). So `up --demo` starts `python -m halton_pipelines.first_build` instead, which loads
the definitions while the demo loads and runs the marts job in its own process (on the same instance, so the
run is recorded with the others) the moment `build()` says the demo is in; the deployment starts once it has
exited, so marts runs never overlap. Every process is
stopped with all it started (`process_groups`), and nothing starts after `stop()`.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable

from halton_api.orchestration import DagsterDeployment, write_instance
from halton_api.process_groups import start_group, stop_group


class DagsterProcesses:
    """The deployment, after the first build when there is one; `start()`, then `build()`, then `stop()`."""

    def __init__(
        self, *, deployment: DagsterDeployment, first_build: bool, say: Callable[[str], None]
    ) -> None:
        self._deployment = deployment
        self.port = deployment.ui_port
        self._log = deployment.log
        self._first_build = first_build
        self._say = say
        self._lock = threading.Lock()
        self._stopped = False
        self._build: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        if not self._first_build:
            self._start_dagster()
            return
        self._say(f"Dagster will start on {self.url} once the first marts build is done (log: {self._log})")
        command = [sys.executable, "-m", "halton_pipelines.first_build"]
        home = self._deployment.home
        write_instance(home, self._deployment.grpc_port)
        env = {**self._deployment.env, "DAGSTER_HOME": str(home)}
        with self._lock:
            self._build = start_group(command, env=env, log=self._log, stdin=subprocess.PIPE)
        threading.Thread(target=self._dagster_after_build, name="dagster-after-build", daemon=True).start()

    def build(self, go: bool) -> None:
        """Tell the first build to run (`go`: the demo is in) or to exit without building."""
        with self._lock:
            process = self._build
            if process is None or process.stdin is None or process.stdin.closed:
                return
            try:
                if go:
                    process.stdin.write(b"build\n")
                process.stdin.close()
            except (BrokenPipeError, ValueError):  # it exited already; its exit starts Dagster
                pass

    def _dagster_after_build(self) -> None:
        assert self._build is not None
        self._build.wait()  # failed or not: the daemon's sensor asks for the marts again
        self._start_dagster()

    def _start_dagster(self) -> None:
        with self._lock:
            if self._stopped:
                return
            self._say(f"starting Dagster on {self.url} (log: {self._log})…")
            self._deployment.start()

    def stop(self) -> None:
        """Stop the first build and Dagster with every process they started; start nothing afterwards."""
        with self._lock:
            self._stopped = True
            if self._build is not None and self._build.stdin is not None:
                self._build.stdin.close()
        if self._build is not None:
            stop_group(self._build)
        self._deployment.stop()  # whatever of it started; nothing starts now
