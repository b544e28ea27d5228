"""Start the embedded warehouse server as a child process and wait until it answers `/ping`."""

from __future__ import annotations

import http.client
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

from halton_warehouse.logins import WarehouseLogins, read_logins, with_login
from halton_warehouse.running import forget_address, record_address

logger = logging.getLogger(__name__)

_LOG_TAIL_BYTES = 4000


class EmbeddedWarehouseError(RuntimeError):
    """The embedded warehouse server did not start."""


class EmbeddedWarehouse:
    """A running embedded warehouse server process; `stop()` (or leaving a `with` block) ends it."""

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        host: str,
        port: int,
        data_dir: Path,
        log_path: Path,
        scratch_dir: Path | None,
    ) -> None:
        self.process = process
        self.host = host
        self.port = port
        self.data_dir = data_dir
        self.log_path = log_path
        self._scratch_dir = scratch_dir
        self.logins: WarehouseLogins | None = None  # known once the server answers

    @property
    def address(self) -> str:
        """`http://host:port`, without a login."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def url(self) -> str:
        """The URL with the admin login, for our own components."""
        return with_login(self.address, self._logins().admin)

    @property
    def reader_url(self) -> str:
        """The URL with the read-only login, for analysts."""
        return with_login(self.address, self._logins().reader)

    def _logins(self) -> WarehouseLogins:
        if self.logins is None:
            raise EmbeddedWarehouseError("the warehouse server has not started yet: it has no logins")
        return self.logins

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self, timeout: float = 10) -> int:
        """SIGTERM, wait up to `timeout` seconds for requests in flight to finish, then kill.

        Returns the process's exit code.
        """
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                logger.warning(
                    "warehouse server %d did not stop within %.0f s: killing it", self.pid, timeout
                )
                self.process.kill()
                self.process.wait()
        if self.process.stdin is not None:
            self.process.stdin.close()
        forget_address(self.data_dir, self.process.pid)
        if self._scratch_dir is not None:
            shutil.rmtree(self._scratch_dir, ignore_errors=True)
            self._scratch_dir = None
        return self.process.returncode

    def __enter__(self) -> EmbeddedWarehouse:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"EmbeddedWarehouse(url={self.url!r}, pid={self.pid})"


def start_embedded(
    data_dir: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    log_path: Path | None = None,
    timeout: float = 30,
) -> EmbeddedWarehouse:
    """Run `python -m halton_warehouse.server` on `data_dir` and return once it answers `/ping`.

    port=0 picks a free port. The server's log goes to `log_path` (by default a temporary file that
    `stop()` removes). The server also stops if this process dies, because it watches its stdin. Its
    logins (made on its first start) are read from `data_dir` once it answers.
    """
    data_dir = Path(data_dir).resolve()
    scratch = Path(tempfile.mkdtemp(prefix="halton-warehouse-"))
    port_file = scratch / "port"
    log_path = Path(log_path) if log_path else scratch / "server.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", "halton_warehouse.server",
        "--data-dir", str(data_dir),
        "--host", host,
        "--port", str(port),
        "--port-file", str(port_file),
        "--exit-with-stdin",
    ]  # fmt: skip
    env = {**os.environ, "TZ": "UTC", "PYTHONUNBUFFERED": "1"}
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT, env=env
        )
    server = EmbeddedWarehouse(process, host, port, data_dir, log_path, scratch)
    deadline = time.monotonic() + timeout
    try:
        while True:
            if process.poll() is not None:
                raise EmbeddedWarehouseError(
                    f"the warehouse server on {data_dir} exited with code {process.returncode} while starting; "
                    f"its log ({log_path}) ends with:\n{_tail(log_path)}"
                )
            if server.port == 0 and port_file.exists():
                text = port_file.read_text().strip()
                server.port = int(text) if text else 0
            if server.port and _answers_ping(host, server.port):
                server.logins = read_logins(data_dir)  # written before the server listens
                record_address(data_dir, server.address, process.pid)
                logger.info("embedded warehouse %s on %s (pid %d)", server.url, data_dir, process.pid)
                return server
            if time.monotonic() > deadline:
                raise EmbeddedWarehouseError(
                    f"the warehouse server on {data_dir} did not answer /ping within {timeout:.0f} s; "
                    f"its log ({log_path}) ends with:\n{_tail(log_path)}"
                )
            time.sleep(0.05)
    except BaseException:
        server.stop(timeout=5)
        raise


def _answers_ping(host: str, port: int) -> bool:
    connection = http.client.HTTPConnection(host, port, timeout=2)
    try:
        connection.request("GET", "/ping")
        response = connection.getresponse()
        return response.status == 200 and response.read() == b"Ok.\n"
    except OSError:
        return False
    finally:
        connection.close()


def _tail(path: Path) -> str:
    try:
        with open(path, "rb") as log:
            log.seek(0, os.SEEK_END)
            log.seek(max(0, log.tell() - _LOG_TAIL_BYTES))
            return log.read().decode("utf-8", errors="replace")
    except OSError as exc:
        return f"(cannot read the log: {exc})"
