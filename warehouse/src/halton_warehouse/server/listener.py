"""The embedded warehouse server: one process owns the chDB engine and serves ClickHouse's HTTP interface.

A chDB data directory can be opened by one process only, and a process can open one directory only,
so every other component (API, Dagster, dbt) reaches the engine through this server, exactly as it
would reach a ClickHouse server: `python -m halton_warehouse.server --data-dir D --port 8123`.

Requests run on a thread per connection (chDB releases the GIL while it works). SIGTERM or SIGINT
stops accepting, lets requests in flight finish (so an acknowledged insert is never lost), closes
idle keep-alive connections, then closes every chDB connection and the engine.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import logging
import os
import select
import signal
import socket
import socketserver
import sys
import threading
import time
from http.server import ThreadingHTTPServer
from pathlib import Path

from halton_warehouse.logins import WarehouseLogins, credentials_path, load_or_create
from halton_warehouse.server.access import Role, allowed_host_names
from halton_warehouse.server.engine import ConnectionPool, Engine, SessionRegistry
from halton_warehouse.server.handler import ClickHouseRequestHandler
from halton_warehouse.server.running_queries import RunningQueries

logger = logging.getLogger(__name__)

DRAIN_TIMEOUT = 25.0  # seconds requests in flight get to finish after SIGTERM
_SESSION_SWEEP_INTERVAL = 1.0
_IDLE_POLL = 0.2  # seconds an idle connection waits before looking again whether the server is stopping


class WarehouseHTTPServer(ThreadingHTTPServer):
    """A threaded HTTP server that knows which connections are busy, so it can stop without cutting one."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        engine: Engine,
        logins: WarehouseLogins,
        extra_hosts: tuple[str, ...] = (),
    ) -> None:
        self.engine = engine
        self.pools = {Role.ADMIN: ConnectionPool(engine), Role.READER: ConnectionPool(engine, readonly=True)}
        self.sessions = SessionRegistry(engine)
        self.running = RunningQueries(self.pools[Role.ADMIN])
        self.logins = logins
        self.allowed_hosts = allowed_host_names(address[0], extra_hosts)
        self.display_name = socket.gethostname()
        self._state = threading.Condition()
        self._open: set[socket.socket] = set()
        self._busy: set[socket.socket] = set()
        self._draining = False
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, ClickHouseRequestHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN, a DNS lookup we have no use for.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    def handle_error(self, request, client_address) -> None:  # type: ignore[override]
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, TimeoutError)):
            logger.debug("client %s went away: %s", client_address, error)
        else:
            logger.exception("unexpected error while serving %s", client_address)

    def process_request_thread(self, request, client_address) -> None:  # type: ignore[override]
        with self._state:
            self._open.add(request)
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._state:
                self._open.discard(request)
                self._busy.discard(request)
                self._state.notify_all()

    def wait_for_request(self, sock: socket.socket, idle_timeout: float) -> bool:
        """Wait for the first byte of the connection's next request; True once it is there and the connection
        counts as busy. False when the client closed, the keep-alive timeout passed, or the server stops.

        Polled rather than blocked on, so a stopping server never has to cut a connection: whether bytes are
        waiting is decided under the lock that drain() takes, and a request that arrived first is served.
        """
        deadline = time.monotonic() + idle_timeout
        while True:
            try:
                readable, _, _ = select.select([sock], [], [], _IDLE_POLL)
            except (OSError, ValueError):  # closed under us
                return False
            with self._state:
                if readable:
                    try:
                        if not sock.recv(1, socket.MSG_PEEK):
                            return False  # the client closed the connection
                    except OSError:
                        return False
                    self._busy.add(sock)
                    self._state.notify_all()
                    return True
                if self._draining or time.monotonic() >= deadline:
                    return False

    def request_finished(self, handler: ClickHouseRequestHandler) -> bool:
        """Marks the connection idle; True when it should close because the server is stopping."""
        with self._state:
            self._busy.discard(handler.connection)
            self._state.notify_all()
            return self._draining

    def accept_backlog(self) -> None:
        """Take the connections the kernel accepted that serve_forever had not yet: closing the listener
        would reset them, and a request may already be on its way on one. They are served like the rest."""
        while select.select([self.socket], [], [], 0)[0]:
            self.handle_request()

    def drain(self, timeout: float = DRAIN_TIMEOUT) -> None:
        """Let requests in flight finish; idle connections close themselves within a poll interval."""
        with self._state:
            self._draining = True
            # Every open connection now either takes up the request waiting on it or closes: settle first,
            # so the count below is of the requests actually in flight.
            self._state.wait_for(lambda: self._open <= self._busy, timeout=_IDLE_POLL * 10)
            busy = len(self._busy)
        if busy:
            logger.info("waiting for %d request(s) in flight to finish", busy)
        with self._state:
            if not self._state.wait_for(lambda: not self._busy and not self._open, timeout=timeout):
                logger.warning(
                    "%d request(s) still running after %.0f s; closing anyway", len(self._busy), timeout
                )
                for sock in self._open - self._busy:
                    _hang_up(sock)

    def close_engine(self) -> None:
        self.sessions.close_all()
        self.engine.close()


def _hang_up(sock: socket.socket) -> None:
    # The handler thread blocked reading the next request sees end-of-file and exits.
    with contextlib.suppress(OSError):  # already closed by the client
        sock.shutdown(socket.SHUT_RDWR)


def run(
    data_dir: Path,
    host: str = "127.0.0.1",
    port: int = 8123,
    port_file: Path | None = None,
    extra_hosts: tuple[str, ...] = (),
) -> None:
    """Serve the ClickHouse HTTP interface over chDB at `data_dir` until SIGTERM or SIGINT.

    The logins are those of `credentials.json` in `data_dir`, made on the first start. Clients must name
    the server by a loopback name, the bound address or one of `extra_hosts`. With port=0 a free port is
    bound; `port_file`, if given, receives the bound port once the server accepts connections.
    """
    logins = load_or_create(Path(data_dir))
    engine = Engine(Path(data_dir))
    try:
        server = WarehouseHTTPServer((host, port), engine, logins, extra_hosts)
    except OSError as exc:
        engine.close()
        raise OSError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    stop = threading.Event()
    previous_handlers = _install_stop_handlers(stop)
    serving = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="http-accept")
    sweeping = threading.Thread(
        target=_sweep_sessions, args=(server.sessions, stop), name="session-sweep", daemon=True
    )
    bound_port = server.server_address[1]
    try:
        serving.start()
        try:
            sweeping.start()
            if port_file is not None:
                _write_port_file(Path(port_file), bound_port)
            logger.info(
                "warehouse server on http://%s:%d (chDB %s, ClickHouse %s, data %s, logins in %s)",
                host,
                bound_port,
                _chdb_version(),
                engine.version,
                engine.data_dir,
                credentials_path(engine.data_dir),
            )
            while not stop.wait(0.5):
                pass
            logger.info("stopping: no new connections, finishing requests in flight")
        finally:
            server.shutdown()  # returns once serve_forever has stopped accepting
            serving.join()
            server.accept_backlog()
    finally:
        server.server_close()
        server.drain()
        server.close_engine()
        stop.set()
        _restore_handlers(previous_handlers)
        if port_file is not None:
            Path(port_file).unlink(missing_ok=True)
        logger.info("warehouse server stopped")


def _sweep_sessions(sessions: SessionRegistry, stop: threading.Event) -> None:
    while not stop.wait(_SESSION_SWEEP_INTERVAL):
        try:
            sessions.expire()
        except Exception:
            logger.exception("expiring idle sessions failed")


def _install_stop_handlers(stop: threading.Event) -> dict[int, object]:
    if threading.current_thread() is not threading.main_thread():
        return {}  # signals reach the main thread only; whoever runs us there owns them
    previous = {}
    for signum in (signal.SIGTERM, signal.SIGINT):
        previous[signum] = signal.signal(signum, lambda *_: stop.set())
    return previous


def _restore_handlers(previous: dict[int, object]) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler)  # type: ignore[arg-type]


def _write_port_file(path: Path, port: int) -> None:
    # Write then rename, so a reader never sees a half-written number.
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(f"{port}\n")
    os.replace(tmp, path)


def _chdb_version() -> str:
    try:
        return importlib.metadata.version("chdb")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _exit_when_stdin_closes() -> None:
    """For a server started by `start_embedded`: stop when the parent that holds our stdin goes away."""

    def watch() -> None:
        # os.read on the descriptor, not sys.stdin: a daemon thread blocked inside a buffered reader
        # holds its lock and makes the interpreter abort at exit.
        with contextlib.suppress(OSError):  # a closed descriptor means the same as end-of-file
            while os.read(0, 4096):
                pass
        logger.info("parent process went away (stdin closed)")
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m halton_warehouse.server",
        description="Serve the ClickHouse HTTP interface over an embedded chDB engine.",
    )
    parser.add_argument(
        "--data-dir", type=Path, required=True, help="chDB data directory (created if missing)"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback)")
    parser.add_argument("--port", type=int, default=8123, help="port to bind; 0 picks a free one")
    parser.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="NAME",
        help="another name clients may reach this server by (repeatable; loopback names always work)",
    )
    parser.add_argument(
        "--port-file", type=Path, default=None, help="write the bound port here once listening"
    )
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO (each query), WARNING")
    parser.add_argument("--exit-with-stdin", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.exit_with_stdin:
        _exit_when_stdin_closes()
    run(
        args.data_dir,
        host=args.host,
        port=args.port,
        port_file=args.port_file,
        extra_hosts=tuple(args.allowed_host),
    )
