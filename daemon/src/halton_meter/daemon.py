"""The daemon: mitmproxy embedded in our own asyncio loop, with the meter's addons and store writer.

:func:`serve` is the daemon process: ``halton-meter start --foreground`` runs it in place, and a plain
``start`` runs that same command detached. :class:`Meter` is also usable in-process (tests, the bench):
``start_background()`` runs it in a thread with its own event loop.

Addon order matters: mitmproxy calls each event on the addons in the order they were added, so
routing decides first, attribution and capture read the decided flow (batch links, before capture,
marks the few bodies it must hold to change), the spend guard refuses a call at its project's hard limit
once capture has read it (:mod:`halton_meter.spend_guard`), and the recorder sees the finished call capture left
behind. mitmproxy keeps its master in module globals, so one process
runs one :class:`Meter` at a time.

No answered call is lost: capture hands each call to the recorder, which journals it, before its
last byte reaches the client (:mod:`halton_meter.journal`). The start replays the journal into
SQLite before the proxy listens; a stop lets calls under way finish (up to :data:`STOP_GRACE_S`),
drains the writer, then replays whatever the journal still holds, so that when the process exits
every answered call is in SQLite.
"""

from __future__ import annotations

import asyncio
import errno
import gc
import logging
import logging.handlers
import signal
import socket
import sqlite3
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mitmproxy import options
from mitmproxy.addons import block, core, next_layer, proxyserver, tlsconfig
from mitmproxy.master import Master

from halton_meter import __version__
from halton_meter.attribution import Attribution
from halton_meter.batch_links import BatchLinks
from halton_meter.capture import Capture, CapturedCall
from halton_meter.cloud.supervisor import CloudSupervisor
from halton_meter.control import Control
from halton_meter.health import Health
from halton_meter.home import HomeProblem, load_machine_id
from halton_meter.journal import Journal
from halton_meter.paths import MeterPaths
from halton_meter.pidfile import AlreadyRunning, PidLock, write_state, write_stopped
from halton_meter.recorder import Recorder, RowBuilder, replay_journal
from halton_meter.routing import Routing
from halton_meter.settings import Settings, load_settings
from halton_meter.spend_guard import SpendGuard
from halton_meter.store import BatchWriter

logger = logging.getLogger(__name__)

# How long a stop waits for calls under way to finish before closing their connections.
STOP_GRACE_S = 10.0


class MeterError(RuntimeError):
    """The daemon cannot start; the message says why and what to do."""


class Meter:
    """One running meter: proxy, addons, writer. See the module docstring."""

    def __init__(self, settings: Settings, *, health: Health | None = None, pricebook: Any = None) -> None:
        from halton_meter.prices_in_force import LivePriceBook
        from halton_meter.pricing import RatesFileError

        self.settings = settings
        self.health = health or Health()
        try:
            self.machine_id = load_machine_id(settings.paths)
            # Follows the installed catalogue: `rates update` or a sync puts new prices in force at once.
            self.pricebook = (
                pricebook
                if pricebook is not None
                else LivePriceBook(settings.pricing_overrides, settings.paths.catalogue)
            )
        except (HomeProblem, RatesFileError) as exc:
            raise MeterError(str(exc)) from exc
        self.journal = Journal(settings.paths.journal, self.health)
        self.rows = RowBuilder(self.pricebook, self.machine_id, self.health)
        self.writer: BatchWriter[CapturedCall] = BatchWriter(
            settings.paths.db, self.rows.rows, self.health, on_stored=self._stored
        )
        self.routing = Routing(self.health)
        self.attribution = Attribution(self.health)
        self.batch_links = BatchLinks(self.health)
        self.capture = Capture(self.health)
        self.guard = SpendGuard(self.health, self.attribution, settings.paths.db)
        self.recorder = Recorder(self.writer, self.attribution, self.health, self.journal)
        self.capture.on_answered = self.recorder.answered
        # The cloud worker lives in this process: the supervisor starts it once pairing is done.
        self.cloud = CloudSupervisor(settings, self.health, self.machine_id)
        self.control = Control(self.health, extra_status=self._extra_status, cloud=self.cloud)
        self.control.on_running = self._on_running
        self.master: Master | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.listen: tuple[str, int] | None = None
        self.error: str | None = None
        self.on_ready: Callable[[Meter], None] | None = None
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None

    # -- options ---------------------------------------------------------------------------------

    def mitmproxy_options(self) -> dict[str, Any]:
        s = self.settings
        values: dict[str, Any] = {
            "listen_host": s.listen_host,
            "listen_port": s.port,
            "confdir": str(s.home),
            # Lazy: never dial a provider on CONNECT; the first request decides where to go (and a
            # redirected upstream or the doctor's probe host needs no connection at all).
            "connection_strategy": "lazy",
            "halton_upstreams": [f"{p}={c.upstream}" for p, c in s.providers.items() if c.upstream],
            "halton_extra_hosts": [f"{p}={h}" for p, c in s.providers.items() for h in c.extra_hosts],
            "halton_default_project": s.default_project,
            "halton_key_projects": [f"{fp}={project}" for fp, project in s.api_key_projects.items()],
            "halton_directory_projects": [
                f"{path}={project}" for path, project in s.directory_projects.items()
            ],
            "halton_directory_attribution": s.directory_attribution,
            "halton_call_origin": s.call_origin,
            "halton_ticket_pattern": s.ticket_pattern,
            "halton_capture_bodies": s.capture_bodies,
            "halton_body_max_bytes": s.body_max_bytes,
            "halton_limits_fresh_minutes": s.limits_fresh_minutes,
        }
        if s.upstream_ca_file is not None:
            values["ssl_verify_upstream_trusted_ca"] = str(s.upstream_ca_file)
        return values

    # -- running ---------------------------------------------------------------------------------

    async def run(self) -> None:
        """Serve until :meth:`shutdown`; every answered call is in SQLite when this returns."""
        self._check_port()
        self.writer.start()
        self._replay(self.journal.segments(), "start")  # what a killed predecessor left
        self.journal.open()
        self.cloud.start()
        try:
            self.loop = asyncio.get_running_loop()
            opts = options.Options()
            master = Master(opts, event_loop=self.loop)
            master.addons.add(
                core.Core(),
                block.Block(),  # refuses non-local clients if someone binds to a public address
                proxyserver.Proxyserver(),
                next_layer.NextLayer(),
                tlsconfig.TlsConfig(),
                self.routing,
                self.attribution,
                self.batch_links,
                self.capture,
                self.guard,
                self.recorder,
                self.control,
            )
            opts.update(**self.mitmproxy_options())
            self.master = master
            self.loop.set_exception_handler(self._loop_exception)
            # Everything loaded so far (price data, mitmproxy, certificates) lives as long as the
            # process: keep it out of the garbage collector's full passes, which would otherwise
            # walk it again and again and show up as tail latency on calls.
            gc.freeze()
            await master.run()
            await self._let_calls_finish(master)
        finally:
            self.cloud.stop()
            self.writer.close()
            self._replay(self.journal.close(), "stop")
            self._ready.set()
            logger.info("meter stopped; %d rows written", self.writer.written)

    async def _let_calls_finish(self, master: Master) -> None:
        """The listeners are closed: refuse new calls on open connections, let those under way end,
        then cut every client connection, so that no byte reaches a client once the journal closes."""
        self.recorder.refusing = True
        deadline = time.monotonic() + STOP_GRACE_S
        while self.recorder.in_flight and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        if self.recorder.in_flight:
            logger.warning(
                "stopping with %d calls still under way; their connections are closed",
                len(self.recorder.in_flight),
            )
        proxyserver = master.addons.get("proxyserver")
        for handler in list(getattr(proxyserver, "connections", {}).values()):
            transport = handler.transports.get(handler.client)
            writer = getattr(transport, "writer", None)
            if isinstance(writer, asyncio.StreamWriter):
                # abort(), not close(): a closing transport still sends what is written to it later.
                writer.transport.abort()
        await asyncio.sleep(0)

    def _replay(self, segments: list[Path], when: str) -> None:
        if not segments:
            return
        try:
            replayed = replay_journal(self.journal, self.settings.paths.db, self.rows, self.health, segments)
        except (sqlite3.DatabaseError, OSError) as exc:
            # The segments stay on disk for the next start; calls still go through meanwhile.
            logger.error("could not replay the call journal at %s: %s", when, exc)
            self.health.error("journal.replay", repr(exc))
            return
        logger.info(
            "journal at %s: %d calls recorded, %d restored to the database, %d damaged records skipped",
            when,
            replayed.calls,
            replayed.restored,
            replayed.damaged,
        )

    def _stored(self, calls: list[CapturedCall]) -> None:
        self.journal.release(segment for call in calls for segment in call.journaled_in)

    def _loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        # Connections still open at shutdown are cancelled; asyncio reports each one. Not an error.
        if isinstance(context.get("exception"), asyncio.CancelledError):
            return
        self.health.error("daemon.loop", str(context.get("message")))
        loop.default_exception_handler(context)

    def shutdown(self) -> None:
        """Stop serving (thread-safe)."""
        if self.master is not None:
            self.master.shutdown()

    def _on_running(self, listen: tuple[str, int] | None) -> None:
        if listen is None:
            self.error = (
                f"could not listen on {self.settings.listen_host}:{self.settings.port} "
                f"(see {self.settings.paths.daemon_log})"
            )
            logger.error(self.error)
            self.shutdown()
        else:
            self.listen = listen
            logger.info("mitm bound on %s:%d", *listen)
            if self.on_ready is not None:
                self.on_ready(self)
        self._ready.set()

    def _check_port(self) -> None:
        if not self.settings.port:
            return
        with socket.socket(socket.AF_INET6 if ":" in self.settings.listen_host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((self.settings.listen_host, self.settings.port))
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise MeterError(
                        f"{self.settings.listen_host}:{self.settings.port} is already in use by another "
                        "program: stop it, or set [proxy] port in config.toml (or pass --port)"
                    ) from None
                raise MeterError(
                    f"cannot listen on {self.settings.listen_host}:{self.settings.port}: {exc.strerror}"
                ) from None

    def _extra_status(self) -> dict[str, Any]:
        return {
            "rows_written": self.writer.written,
            "rows_queued": self.writer.pending(),
            "machine_id": self.machine_id,
        }

    # -- in-process use (tests, bench) -----------------------------------------------------------

    def start_background(self, timeout: float = 20.0) -> Meter:
        """Run in a daemon thread with its own event loop; return once the port is bound."""

        def target() -> None:
            try:
                asyncio.run(self.run())
            except Exception as exc:
                logger.exception("meter thread failed")
                self.error = str(exc)
                self._ready.set()

        self._thread = threading.Thread(target=target, name="halton-meter", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout) or self.listen is None:
            self.stop_background()
            raise MeterError(self.error or "the meter did not start in time")
        return self

    def stop_background(self, timeout: float = 30.0) -> None:
        self.shutdown()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def flush(self, timeout: float = 10.0) -> bool:
        """Block until every call started so far has ended and is in SQLite (tests, bench)."""
        deadline = time.monotonic() + timeout
        while self.recorder.in_flight or self.recorder.waiting:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return self.writer.flush(max(deadline - time.monotonic(), 0.1))


# ---------------------------------------------------------------------------------------------------
# Process entry point


def configure_logging(paths: MeterPaths, level: str, *, to_stderr: bool) -> None:
    paths.logs.mkdir(parents=True, exist_ok=True)
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    handlers: list[logging.Handler] = [
        logging.handlers.RotatingFileHandler(
            paths.daemon_log, maxBytes=5_000_000, backupCount=3, encoding="utf-8"
        )
    ]
    if to_stderr:
        handlers.append(logging.StreamHandler(sys.stderr))
    root = logging.getLogger()
    for handler in handlers:
        handler.setFormatter(formatter)
        root.addHandler(handler)
    root.setLevel(level)
    # mitmproxy logs every client connection at INFO: keep its chatter out unless debugging.
    logging.getLogger("mitmproxy").setLevel(logging.DEBUG if level == "DEBUG" else logging.WARNING)


async def _serve(meter: Meter, paths: MeterPaths) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, meter.shutdown)
    meter.on_ready = lambda m: write_state(paths, m.listen)
    try:
        await meter.run()
    finally:
        write_stopped(paths)


def serve(home: Path | None = None, port: int | None = None, *, foreground: bool = False) -> None:
    """Run the daemon in this process until SIGTERM/SIGINT.

    Raises :class:`SettingsError`, :class:`AlreadyRunning` or :class:`MeterError` with a message for
    the user; the CLI (``start --foreground``, which is also what a detached ``start`` runs) shows it.
    """
    settings = load_settings(home, port=port)
    paths = settings.paths
    configure_logging(paths, settings.log_level, to_stderr=foreground)
    lock = PidLock(paths.pidfile)
    try:
        lock.acquire()
    except AlreadyRunning as exc:
        logger.error("%s; not starting a second one", exc)
        raise
    try:
        logger.info("halton-meter %s starting (home %s)", __version__, paths.home)
        meter = Meter(settings)
        asyncio.run(_serve(meter, paths))
        if meter.error:
            raise MeterError(meter.error)
    except MeterError as exc:
        logger.error("%s", exc)
        raise
    except Exception:
        logger.exception("the daemon failed")
        raise
    finally:
        lock.release()
