"""The chDB engine behind the HTTP server: one data directory, many connections, sessions by id.

A chDB connection is a ClickHouse session (its own SET values, current database and temporary
tables) on the one engine this process may open. Sessionless requests borrow a connection from a
pool; a request with `session_id` always gets that session's own connection, so SET and temporary
tables stay within it. URL settings are applied with SET only when they differ from what the
connection already has: clients send the same settings on every request, so this usually costs
nothing.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from halton_warehouse.server.wire_errors import (
    INVALID_SESSION_TIMEOUT,
    SESSION_IS_LOCKED,
    SESSION_NOT_FOUND,
    ClickHouseError,
    EngineError,
)

logger = logging.getLogger(__name__)

# chDB's defaults differ from a server's where it matters to us: pin them on every connection.
BASELINE_SETTINGS = {"date_time_input_format": "best_effort"}
DEFAULT_SESSION_TIMEOUT = 60.0  # seconds, ClickHouse's default_session_timeout
MAX_SESSION_TIMEOUT = 3600.0  # ClickHouse's max_session_timeout
SESSION_LOCK_WAIT = 1.0  # a real server refuses at once; a short wait absorbs a client's tail latency
_MAX_IDLE_POOLED = 16
# Parts smaller than this (uncompressed) are written as one file, ClickHouse's "packed" part storage, instead
# of a file or two per column, index and checksum: a few thousand rows a second mean several new parts a
# second and a stream of merges, each creating and deleting its files. Measured with bench/ingest.py on
# ext4: without it the kernel's inode allocation was ~35% of the engine's CPU at 16 meters; with it the
# engine's CPU per 1,000 rows fell by a fifth (bench/RESULTS.md, "Ingestion"). Larger merged parts keep the
# ordinary layout that lets a query read only its columns. A ClickHouse server is left to its operator
# (the setting is documented as ClickHouse Cloud's), so this is the embedded engine's, not the tables'.
PACKED_PART_BYTES = 32 << 20
ENGINE_CONFIG = f"""<clickhouse>
  <merge_tree>
    <min_bytes_for_full_part_storage>{PACKED_PART_BYTES}</min_bytes_for_full_part_storage>
  </merge_tree>
</clickhouse>
"""
_NOT_STREAMABLE = "Streaming query is not supported"
_SETTING_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*+")


def quote_identifier(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def quote_literal(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class EngineConnection:
    """One chDB connection and what we last told it (database, URL settings)."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self.database: str | None = "default"
        # Settings applied from URL parameters; None when a failed SET left them unknown.
        self.url_settings: dict[str, str] | None = {}

    def run(self, sql: str | bytes, fmt: str = "TabSeparated", params: dict[str, str] | None = None) -> Any:
        try:
            return self.raw.query(sql, fmt, params=params or {})
        except RuntimeError as exc:
            raise EngineError(str(exc)) from None

    def stream(self, sql: str | bytes, fmt: str, params: dict[str, str]) -> Iterator[Any] | None:
        """The result in pieces as the engine produces them (None: not a query chDB can stream).

        Closing the iterator before its end cancels the query (the client went away).
        """
        try:
            handle = self.raw.send_query(sql, fmt, params=params)
        except RuntimeError as exc:
            if _NOT_STREAMABLE in str(exc)[:200]:
                return None
            raise EngineError(str(exc)) from None
        return self._pieces(handle)

    def _pieces(self, handle: Any) -> Iterator[Any]:
        finished = False
        try:
            while True:
                try:
                    piece = self.raw.streaming_fetch_result(handle)
                except RuntimeError as exc:
                    finished = True
                    raise EngineError(str(exc)) from None
                # An empty piece ends the stream; a header-only piece (TSVWithNames of no rows) does not.
                if piece is None or (piece.size() == 0 and piece.rows_read() == 0):
                    finished = True
                    return
                yield piece
        finally:
            if not finished:
                try:
                    self.raw.streaming_cancel_query(handle)
                except RuntimeError:
                    logger.debug("cancelling an abandoned streaming query failed", exc_info=True)

    def on_progress(self, callback: Callable[[dict[str, int]], None] | None) -> None:
        """Call `callback` (from the engine's threads) with the progress of this connection's queries."""
        self.raw.set_progress_callback(callback)

    def prepare(self, database: str | None, settings: dict[str, str]) -> None:
        """Make the connection's current database and URL settings those of this request."""
        if database and database != self.database:
            self.database = None
            self.run(f"USE {quote_identifier(database)}")
            self.database = database
        applied = self.url_settings
        changes = []
        for name, value in settings.items():
            if applied is None or applied.get(name) != value:
                if not _SETTING_NAME.fullmatch(name):
                    raise ClickHouseError(115, f"Unknown setting '{name}'", name="UNKNOWN_SETTING")
                changes.append(f"{name} = {quote_literal(value)}")
        for name in (applied or {}).keys() - settings.keys():
            baseline = BASELINE_SETTINGS.get(name)
            changes.append(f"{name} = {quote_literal(baseline) if baseline else 'DEFAULT'}")
        if changes:
            self.url_settings = None
            self.run("SET " + ", ".join(changes))
            self.url_settings = dict(settings)

    def current_database(self) -> str:
        if self.database is None:
            self.database = self.run("SELECT currentDatabase()").bytes().decode().rstrip("\n")
        return self.database

    def forget_database(self) -> None:
        """After a USE statement the current database is whatever the statement chose."""
        self.database = None

    def close(self) -> None:
        try:
            self.raw.close()
        except RuntimeError:
            logger.warning("closing a chDB connection failed", exc_info=True)


class Engine:
    """The chDB engine on one data directory, and the connections opened on it."""

    def __init__(self, data_dir: Path) -> None:
        _pin_process_timezone()
        # Imported here, after TZ is pinned: ClickHouse reads the timezone when the library loads.
        from chdb import _chdb

        self._chdb = _chdb
        data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir = data_dir.resolve()
        config = self.data_dir / "halton-engine.xml"
        config.write_text(ENGINE_CONFIG)  # written on every start: the code's defaults, not an old copy's
        # Every connection names the same engine: the directory and its config.
        self._address = f"{self.data_dir}?config-file={config}"
        try:
            # The first connection opens (and locks) the directory; it stays open until close().
            self._anchor = _chdb.connect(self._address)
        except RuntimeError as exc:
            raise RuntimeError(
                f"cannot open the chDB data directory {self.data_dir}: {exc}. "
                "Is another warehouse server (or a process using chdb) already using it?"
            ) from exc
        row = self._anchor.query("SELECT version(), timezone()", "TabSeparated").bytes()
        self.version, self.timezone = row.decode().rstrip("\n").split("\t")
        if self.timezone not in ("UTC", "Etc/UTC"):
            logger.warning(
                "the engine runs in timezone %s, not UTC: chdb was loaded before TZ was pinned", self.timezone
            )
        self._lock = threading.Lock()
        self._open: set[EngineConnection] = set()
        self._closed = False

    def connect(self, *, readonly: bool = False) -> EngineConnection:
        """A new connection; a `readonly` one can never write or undo that (`readonly = 2` allows SET)."""
        with self._lock:
            if self._closed:
                raise ClickHouseError(210, "The warehouse server is shutting down", name="NETWORK_ERROR")
            connection = EngineConnection(self._chdb.connect(self._address))
            self._open.add(connection)
        baseline = ", ".join(f"{name} = {quote_literal(value)}" for name, value in BASELINE_SETTINGS.items())
        connection.run(f"SET {baseline}" + (", readonly = 2" if readonly else ""))
        return connection

    def disconnect(self, connection: EngineConnection) -> None:
        with self._lock:
            self._open.discard(connection)
        connection.close()

    def close(self) -> None:
        """Close every connection, then the engine (the last connection to close shuts it down)."""
        with self._lock:
            self._closed = True
            connections, self._open = self._open, set()
        for connection in connections:
            connection.close()
        try:
            self._anchor.close()
        except RuntimeError:
            logger.warning("closing the chDB engine failed", exc_info=True)


class ConnectionPool:
    """Connections for requests without a session: borrowed for one request, then reused."""

    def __init__(self, engine: Engine, *, readonly: bool = False) -> None:
        self._engine = engine
        self._readonly = readonly
        self._idle: list[EngineConnection] = []
        self._lock = threading.Lock()

    def acquire(self) -> EngineConnection:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return self._engine.connect(readonly=self._readonly)

    def release(self, connection: EngineConnection, reusable: bool) -> None:
        """Return a connection; one that holds state from the request (SET, USE, a temporary table)
        or failed in an unexpected way is closed instead, so it can never leak into another request."""
        # A connection whose SET failed half-way holds settings we no longer know: never reuse it.
        if reusable and connection.url_settings is not None:
            with self._lock:
                if len(self._idle) < _MAX_IDLE_POOLED:
                    self._idle.append(connection)
                    return
        self._engine.disconnect(connection)


@dataclass(eq=False)
class Session:
    key: tuple[bool, str]  # (readonly, the client's session_id)
    connection: EngineConnection
    timeout: float
    last_used: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock)
    closed: bool = False


def parse_session_timeout(value: str | None) -> float:
    if value is None or value == "":
        return DEFAULT_SESSION_TIMEOUT
    if not value.isdigit():
        raise ClickHouseError(INVALID_SESSION_TIMEOUT, f"Invalid session timeout: '{value}'")
    timeout = float(value)
    if timeout > MAX_SESSION_TIMEOUT:
        raise ClickHouseError(
            INVALID_SESSION_TIMEOUT,
            f"Session timeout '{value}' is larger than max_session_timeout: {int(MAX_SESSION_TIMEOUT)}",
        )
    return timeout


class SessionRegistry:
    """Sessions by login and id; each is used by one request at a time and closes after its idle timeout.

    Keyed by login too, so the reader can never borrow a session the admin opened (and its rights).
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._sessions: dict[tuple[bool, str], Session] = {}
        self._lock = threading.Lock()

    def checkout(
        self, session_id: str, timeout: float, must_exist: bool, *, readonly: bool = False
    ) -> Session:
        """The session, locked for this request (created unless `must_exist`)."""
        key = (readonly, session_id)
        while True:
            with self._lock:
                session = self._sessions.get(key)
                if session is None:
                    if must_exist:
                        raise ClickHouseError(SESSION_NOT_FOUND, f"Session {session_id} not found")
                    session = Session(key, self._engine.connect(readonly=readonly), timeout)
                    session.lock.acquire()
                    self._sessions[key] = session
                    logger.debug("session %s opened", session_id)
                    return session
            if not session.lock.acquire(timeout=SESSION_LOCK_WAIT):
                raise ClickHouseError(
                    SESSION_IS_LOCKED, f"Session {session_id} is locked by a concurrent client"
                )
            if session.closed:  # expired while we waited for it: open a fresh one
                session.lock.release()
                continue
            session.timeout = timeout
            return session

    def checkin(self, session: Session) -> None:
        session.last_used = time.monotonic()
        session.lock.release()

    def expire(self) -> int:
        """Close sessions idle for longer than their timeout; returns how many were closed."""
        now = time.monotonic()
        expired = []
        with self._lock:
            for key, session in list(self._sessions.items()):
                if now - session.last_used < session.timeout or not session.lock.acquire(blocking=False):
                    continue
                session.closed = True
                del self._sessions[key]
                expired.append(session)
        for session in expired:
            self._engine.disconnect(session.connection)
            session.lock.release()
            logger.debug("session %s expired", session.key[1])
        return len(expired)

    def close_all(self) -> None:
        with self._lock:
            sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            session.closed = True
            self._engine.disconnect(session.connection)


def _pin_process_timezone() -> None:
    """ClickHouse takes its timezone from TZ when it loads; pin UTC, as our servers run."""
    os.environ["TZ"] = "UTC"
    time.tzset()
