"""Drive a meter as a person would: its CLI in subprocesses, the detached daemon, its home on disk.

Used by the meter's own process-level tests and by the cross-component tests against the real cloud.
"""

from __future__ import annotations

import json
import os
import queue
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from halton_meter.paths import MeterPaths

# A short supervisor tick keeps tests fast; the product's default is 10 s (at most 15).
TICK_S = 0.2
DASHBOARD = "http://127.0.0.1:5173"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(check: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


class MeterProcess:
    """A home directory, its environment, and the CLI run against it."""

    def __init__(
        self,
        tmp_path: Path,
        *,
        base_url: str,
        dashboard: str | None = DASHBOARD,
        tick_seconds: float = TICK_S,
        extra_config: str = "",
        proxy_config: str = "",
    ) -> None:
        self.paths = MeterPaths.resolve(tmp_path / "home")
        self.port = free_port()
        self.env = {
            **os.environ,
            "HALTON_METER_HOME": str(self.paths.home),
            "HALTON_METER_SUPERVISOR_SECONDS": str(tick_seconds),
            "PYTHONUNBUFFERED": "1",
        }
        for name in ("HALTON_METER_PORT", "HALTON_METER_CLOUD_URL"):
            self.env.pop(name, None)
        assert self.cli("init").returncode == 0
        self.paths.config.write_text(
            "# written by the test: keep me\n"
            f"[proxy]\nport = {self.port}\n{proxy_config}[attribution]\ndirectory = false\n\n"
            f'[cloud]\nenabled = false\nbase_url = "{base_url}"\n'
            + (f'dashboard_origin = "{dashboard}"\n' if dashboard else "")
            + "sync_interval_seconds = 0.1\n"
            + extra_config
        )

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "halton_meter.cli", *args],
            env=self.env,
            stdin=subprocess.DEVNULL,  # never the test runner's terminal: the CLI must see no one to ask
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def spawn(self, *args: str, stdin: int = subprocess.DEVNULL) -> Spawned:
        """Start the CLI; ``stdin`` a pty's end to be a person at a terminal (the CLI then may ask)."""
        return Spawned(
            subprocess.Popen(
                [sys.executable, "-m", "halton_meter.cli", *args],
                env=self.env,
                stdin=stdin,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )

    def json(self, *args: str) -> dict:
        result = self.cli(*args, "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def pid(self) -> int:
        return json.loads(self.paths.daemon_state.read_text())["pid"]

    @contextmanager
    def running(self) -> Iterator[MeterProcess]:
        started = self.cli("start")
        assert started.returncode == 0, started.stdout + started.stderr
        try:
            yield self
        finally:
            self.cli("stop")

    def unsynced(self) -> int:
        with sqlite3.connect(self.paths.db) as conn:
            return conn.execute("SELECT COUNT(*) FROM requests WHERE synced_at IS NULL").fetchone()[0]

    def loopback(self, method: str, path: str, **kwargs) -> httpx.Response:
        with httpx.Client(trust_env=False, timeout=10) as client:
            return client.request(method, f"http://127.0.0.1:{self.port}{path}", **kwargs)


class Spawned:
    """A CLI process whose stdout is read line by line as it comes."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.process = process
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_line(self, text: str, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.1)
            except queue.Empty:
                continue
            self.seen.append(line)
            if text in line:
                return
        raise AssertionError(f"{text!r} never printed; got {self.seen}")

    def finish(self, timeout: float = 20.0) -> tuple[int, str, str]:
        code = self.process.wait(timeout)
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        assert self.process.stderr is not None
        return code, "\n".join(self.seen), self.process.stderr.read()
