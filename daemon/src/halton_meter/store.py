"""The meter's SQLite store (``db.sqlite``): schema, migrations, the batch writer and row conversion.

Durability choice, and what a crash can lose
--------------------------------------------
The database runs in WAL mode with ``PRAGMA synchronous = NORMAL``. In WAL mode NORMAL only fsyncs
at checkpoints, not at every commit, which keeps a commit at tens of microseconds instead of a
disk flush per batch. The trade-off, as SQLite documents it:

* the daemon crashing or being killed (``kill -9``) loses **no committed row**: the WAL is in the
  OS page cache and is replayed on the next open;
* a power cut or OS crash can lose the **last commits since the last checkpoint** (rows of the
  final second or so); the database itself stays consistent, never corrupt;
* rows still **queued in memory** (the writer commits every :data:`WRITE_EVERY_S`, 50 ms) die with
  the process, but each of those calls is already in the call journal (:mod:`halton_meter.journal`),
  written before its answer reached the client, and the next start replays it into this database.

A clean stop (``halton-meter stop``, SIGTERM) drains the queue, commits everything and replays what
the journal still holds before the process exits. ``test_store.py`` checks the pragma, the kill-9
case and the clean-stop case; ``test_journal.py`` the journal.

Money is stored as integer nano-dollars (``cost_nusd``): exact, and SQLite sums integers exactly.
Timestamps are ISO-8601 UTC text with microseconds, so text order is time order.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar
from uuid import UUID

from halton_meter.health import Health

if TYPE_CHECKING:
    # The wire model loads pydantic; only the sync path builds one (row_to_protocol imports it then), and
    # the read-only CLI commands that open this store start without it (issue 18, item 8).
    from halton_meter.protocol import RequestRow

logger = logging.getLogger(__name__)

NANO = Decimal("0.000000001")
NANOS_PER_USD = 10**9
MAX_BATCH = 500
MAX_QUEUE = 100_000
SYNCHRONOUS_MODE = "NORMAL"
PERSIST_COUNTS_EVERY_S = 1.0
WRITE_EVERY_S = 0.05

# Append-only: a released migration is never edited; the schema version is PRAGMA user_version.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE requests (
        request_uid            TEXT PRIMARY KEY,
        machine_id             TEXT NOT NULL,
        started_at             TEXT NOT NULL,
        ended_at               TEXT NOT NULL,
        provider               TEXT NOT NULL,
        model_requested        TEXT,
        model_served           TEXT,
        endpoint               TEXT NOT NULL,
        status_code            INTEGER,
        streamed               INTEGER NOT NULL DEFAULT 0,
        complete               INTEGER NOT NULL DEFAULT 1,
        service_tier           TEXT,
        service_tier_requested TEXT,
        batch                  INTEGER NOT NULL DEFAULT 0,
        input_tokens           INTEGER,
        output_tokens          INTEGER,
        cache_read_tokens      INTEGER,
        cache_write_tokens     INTEGER,
        cache_write_1h_tokens  INTEGER,
        reasoning_tokens       INTEGER,
        extra_units            TEXT,
        cost_nusd              INTEGER,
        billed_cost_nusd       INTEGER,
        price_card             TEXT,
        unpriced_reason        TEXT,
        project                TEXT NOT NULL DEFAULT 'default',
        attribution_tier       TEXT NOT NULL DEFAULT 'default',
        prompt_hash            TEXT,
        provider_request_id    TEXT,
        latency_ms             INTEGER,
        ttfb_ms                INTEGER,
        parse_errors           INTEGER NOT NULL DEFAULT 0,
        error                  TEXT,
        synced_at              TEXT
    );
    CREATE INDEX requests_by_time ON requests (started_at);
    CREATE INDEX requests_by_project ON requests (project, started_at);
    CREATE INDEX requests_by_model ON requests (provider, model_served, started_at);
    CREATE INDEX requests_unsynced ON requests (started_at) WHERE synced_at IS NULL;

    -- Local body capture (off by default, size-capped), never read by the sync path.
    CREATE TABLE request_bodies (
        request_uid    TEXT PRIMARY KEY REFERENCES requests (request_uid) ON DELETE CASCADE,
        request_body   BLOB,
        response_body  BLOB,
        truncated      INTEGER NOT NULL DEFAULT 0
    );

    -- Failures counted by the daemon, per local day and kind, for `halton-meter status`.
    CREATE TABLE capture_errors (
        day    TEXT NOT NULL,
        kind   TEXT NOT NULL,
        count  INTEGER NOT NULL,
        PRIMARY KEY (day, kind)
    );
    """,
    """
    -- Rows the cloud refused (HTTP 422, or 413 for a single row) are set aside with its message,
    -- so one bad row never blocks the rest (`cloud status` lists them).
    ALTER TABLE requests ADD COLUMN sync_rejected TEXT;
    DROP INDEX requests_unsynced;
    CREATE INDEX requests_unsynced ON requests (started_at) WHERE synced_at IS NULL AND sync_rejected IS NULL;

    -- The pairing with a cloud workspace (one row at most) and the sync worker's progress.
    -- The token itself lives in cloud-credentials.json, this is its encrypted mirror (cloud.key).
    -- No semicolons in these comments: _statements() splits the script on them.
    CREATE TABLE cloud_state (
        id                    INTEGER PRIMARY KEY CHECK (id = 1),
        pairing_id            TEXT NOT NULL,
        base_url              TEXT NOT NULL,
        workspace_id          TEXT NOT NULL,
        workspace_slug        TEXT NOT NULL,
        workspace_name        TEXT NOT NULL,
        device_id             TEXT,
        machine_id            TEXT NOT NULL,
        hostname              TEXT NOT NULL,
        api_key_ciphertext    TEXT NOT NULL,
        paired_at             TEXT NOT NULL,
        paused_reason         TEXT,
        paused_detail         TEXT,
        last_sync_at          TEXT,
        last_upload_at        TEXT,
        last_reconcile_at     TEXT,
        last_error            TEXT,
        last_error_at         TEXT,
        consecutive_failures  INTEGER NOT NULL DEFAULT 0,
        degraded_reason       TEXT,
        rows_accepted         INTEGER NOT NULL DEFAULT 0,
        rows_duplicate        INTEGER NOT NULL DEFAULT 0
    );
    """,
    """
    -- What the last reconcile found (JSON: matched days, re-sent rows, differences), beside its time.
    ALTER TABLE cloud_state ADD COLUMN last_reconcile_result TEXT;
    """,
    """
    -- Facts the cloud needs to price a call as the meter does (warehouse migration 0006): the region the
    -- provider served it in, and the web searches it billed per use (NULL when the provider did not say).
    ALTER TABLE requests ADD COLUMN region TEXT;
    ALTER TABLE requests ADD COLUMN web_search_requests INTEGER;
    """,
    """
    -- A row's earlier prices: before a re-price changes a row's cost, price card or unpriced reason, its
    -- previous state is kept here (with when it was synced), so an unpriced call priced later, or a call
    -- priced again under a new catalogue, still shows what it was first recorded at.
    CREATE TABLE request_price_history (
        id               INTEGER PRIMARY KEY AUTOINCREMENT,
        request_uid      TEXT NOT NULL REFERENCES requests (request_uid) ON DELETE CASCADE,
        replaced_at      TEXT NOT NULL,
        replaced_by      TEXT NOT NULL,
        cost_nusd        INTEGER,
        price_card       TEXT,
        unpriced_reason  TEXT,
        synced_at        TEXT
    );
    CREATE INDEX request_price_history_by_uid ON request_price_history (request_uid, id);
    """,
    """
    -- Where each call came from (halton_meter.origin): the caller's git repository, branch, the ticket key
    -- in the branch name, and the tool that called. NULL where the meter could not see it.
    ALTER TABLE requests ADD COLUMN repository TEXT;
    ALTER TABLE requests ADD COLUMN branch TEXT;
    ALTER TABLE requests ADD COLUMN ticket TEXT;
    ALTER TABLE requests ADD COLUMN tool TEXT;
    ALTER TABLE requests ADD COLUMN tool_version TEXT;
    CREATE INDEX requests_by_branch ON requests (branch, started_at);
    """,
    """
    -- Hard limits (halton_meter.spend_limits): the limited projects the cloud named on the last fetch, with
    -- each project's month-to-date spend and the time that figure is as of, and when the meter fetched them.
    CREATE TABLE spend_limits (
        project      TEXT PRIMARY KEY,
        budget_nusd  INTEGER NOT NULL,
        month        TEXT NOT NULL,
        spend_nusd   INTEGER,
        spend_as_of  TEXT,
        problem      TEXT
    );
    -- One row: when the limits above were fetched, and the last failure to fetch them since.
    CREATE TABLE spend_limit_fetch (
        id             INTEGER PRIMARY KEY CHECK (id = 1),
        fetched_at     TEXT,
        last_error     TEXT,
        last_error_at  TEXT
    );
    -- `halton-meter override <project>`: the next call of the project passes its limit once.
    CREATE TABLE limit_overrides (
        project     TEXT PRIMARY KEY,
        granted_at  TEXT NOT NULL
    );
    -- Each call refused at a limit, and each let through on an override, until the cloud has it.
    CREATE TABLE limit_events (
        event_uid    TEXT PRIMARY KEY,
        at           TEXT NOT NULL,
        kind         TEXT NOT NULL CHECK (kind IN ('blocked', 'override')),
        via          TEXT CHECK (via IN ('header', 'command')),
        project      TEXT NOT NULL,
        provider     TEXT NOT NULL,
        model        TEXT,
        budget_nusd  INTEGER NOT NULL,
        spend_nusd   INTEGER NOT NULL,
        synced_at    TEXT
    );
    CREATE INDEX limit_events_unsynced ON limit_events (at) WHERE synced_at IS NULL;
    """,
)

# The meter's own columns of `requests`, kept beside the wire row's (halton_meter.protocol.RequestRow):
# what the cloud never sees, or sees only through the row.
LOCAL_COLUMNS = (
    "service_tier_requested",
    "extra_units",
    "billed_cost_nusd",
    "unpriced_reason",
    "parse_errors",
    "error",
    "synced_at",
)


@cache
def _stored_as() -> dict[str, tuple[str, Callable[[Any], Any], Callable[[Any], Any]]]:
    """Wire fields SQLite keeps under another name or type: column, to SQLite, back to the wire."""
    return {
        "request_uid": ("request_uid", str, UUID),
        "started_at": ("started_at", ts, parse_ts),
        "ended_at": ("ended_at", ts, parse_ts),
        "streamed": ("streamed", int, bool),
        "complete": ("complete", int, bool),
        "batch": ("batch", int, bool),
        "cost_usd": ("cost_nusd", usd_to_nanos, nanos_to_usd),
    }


@cache
def request_columns() -> tuple[str, ...]:
    """The columns an insert fills: the wire row's (derived from RequestRow, loaded on first use: only a path
    that holds rows needs pydantic), then the meter's own."""
    from halton_meter.protocol import REQUEST_ROW_FIELDS

    stored = _stored_as()
    return tuple(stored[f][0] if f in stored else f for f in REQUEST_ROW_FIELDS) + LOCAL_COLUMNS


@cache
def _insert_request() -> str:
    columns = request_columns()
    return f"INSERT INTO requests ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"


class StoreError(RuntimeError):
    """The database cannot be opened or migrated; the message says why and what to do."""


@dataclass(frozen=True)
class StoredCall:
    """One call as the meter keeps it: the wire row plus what stays local."""

    row: RequestRow
    unpriced_reason: str | None = None
    service_tier_requested: str | None = None
    billed_cost_usd: Decimal | None = None
    extra_units: dict[str, int] = field(default_factory=dict)
    parse_errors: int = 0
    error: str | None = None
    request_body: bytes | None = None
    response_body: bytes | None = None
    bodies_truncated: bool = False


# ---------------------------------------------------------------------------------------------------
# Connections and migrations


def connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    """A connection with the meter's pragmas; ``readonly`` for reports (never blocks the writer)."""
    if readonly:
        if not path.exists():
            raise StoreError(f"{path} does not exist yet: run `halton-meter init`")
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0, check_same_thread=False)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, timeout=5.0, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode = WAL")
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA synchronous = {SYNCHRONOUS_MODE}")
    conn.execute("PRAGMA busy_timeout = 5000")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema to the newest version; safe to run from two processes at once."""
    conn.execute("BEGIN IMMEDIATE")  # the write lock serialises concurrent migrators
    try:
        current = schema_version(conn)
        if current > len(MIGRATIONS):
            raise StoreError(
                f"db.sqlite has schema version {current}, newer than this halton-meter knows "
                f"({len(MIGRATIONS)}): upgrade halton-meter"
            )
        for version, script in enumerate(MIGRATIONS[current:], start=current + 1):
            for statement in _statements(script):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {version}")
            logger.info("migrated db.sqlite to schema version %d", version)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return schema_version(conn)


def open_store(path: Path) -> sqlite3.Connection:
    """A read-write connection to a migrated database (created if missing)."""
    conn = connect(path)
    migrate(conn)
    return conn


def _statements(script: str) -> list[str]:
    # executescript() would COMMIT our transaction, so split on ';' (our DDL has none in literals).
    statements = []
    for part in script.split(";"):
        sql = "\n".join(line for line in part.splitlines() if not line.strip().startswith("--")).strip()
        if sql:
            statements.append(sql)
    return statements


# ---------------------------------------------------------------------------------------------------
# Values


def ts(value: datetime) -> str:
    """The one text form of a timestamp in the store (UTC, microseconds, sortable)."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


def parse_ts(value: str) -> datetime:
    return datetime.fromisoformat(value)


def usd_to_nanos(value: Decimal | None) -> int | None:
    if value is None:
        return None
    return int(value.quantize(NANO, rounding=ROUND_HALF_EVEN) * NANOS_PER_USD)


def nanos_to_usd(value: int | None) -> Decimal | None:
    if value is None:
        return None
    return (Decimal(value) / NANOS_PER_USD).quantize(NANO)


def _request_values(call: StoredCall) -> tuple[Any, ...]:
    r = call.row
    stored = _stored_as()
    values = [
        stored[name][1](value) if name in stored else value
        for name, value in r  # a pydantic model iterates its fields in declaration order
    ]
    values += [
        call.service_tier_requested,
        json.dumps(call.extra_units, sort_keys=True) if call.extra_units else None,
        usd_to_nanos(call.billed_cost_usd),
        call.unpriced_reason,
        call.parse_errors,
        call.error,
        None,  # synced_at
    ]
    return tuple(values)


def insert_calls(
    conn: sqlite3.Connection, calls: Sequence[StoredCall], *, skip_existing: bool = False
) -> int:
    """Insert calls in the caller's transaction; with ``skip_existing`` a request_uid already stored is
    left as it is (a journal replay, batch results downloaded again). Returns how many rows were inserted."""
    # Only a clash on request_uid is skipped (OR IGNORE would also drop a row breaking NOT NULL).
    skip = " ON CONFLICT (request_uid) DO NOTHING" if skip_existing else ""
    cursor = conn.executemany(_insert_request() + skip, [_request_values(c) for c in calls])
    inserted = cursor.rowcount if calls else 0
    bodies = [
        (str(c.row.request_uid), c.request_body, c.response_body, int(c.bodies_truncated))
        for c in calls
        if c.request_body is not None or c.response_body is not None
    ]
    if bodies:
        conn.executemany(
            "INSERT INTO request_bodies (request_uid, request_body, response_body, truncated) "
            "VALUES (?, ?, ?, ?)" + skip,
            bodies,
        )
    return inserted


def add_error_counts(conn: sqlite3.Connection, counts: dict[str, int], day: str | None = None) -> None:
    day = day or datetime.now().astimezone().date().isoformat()
    conn.executemany(
        "INSERT INTO capture_errors (day, kind, count) VALUES (?, ?, ?) "
        "ON CONFLICT (day, kind) DO UPDATE SET count = count + excluded.count",
        [(day, kind, n) for kind, n in counts.items() if n],
    )


# ---------------------------------------------------------------------------------------------------
# Rows for the sync worker


def row_to_protocol(row: sqlite3.Row) -> RequestRow:
    """Rebuild the wire row from a stored one (validated again: a bad row fails here, not at the cloud)."""
    from halton_meter.protocol import REQUEST_ROW_FIELDS, RequestRow

    stored = _stored_as()
    return RequestRow(
        **{
            name: stored[name][2](row[stored[name][0]]) if name in stored else row[name]
            for name in REQUEST_ROW_FIELDS
        }
    )


def rows_to_protocol(rows: Iterable[sqlite3.Row]) -> list[RequestRow]:
    return [row_to_protocol(r) for r in rows]


_UNSYNCED = "synced_at IS NULL AND sync_rejected IS NULL"


def unsynced_records(conn: sqlite3.Connection, *, limit: int) -> list[sqlite3.Row]:
    """The oldest rows the cloud has not acknowledged (nor refused) yet, as stored."""
    return conn.execute(
        f"SELECT * FROM requests WHERE {_UNSYNCED} ORDER BY started_at LIMIT ?", (limit,)
    ).fetchall()


def unsynced_rows(conn: sqlite3.Connection, *, limit: int) -> list[RequestRow]:
    """The oldest rows the cloud has not acknowledged yet, as wire rows."""
    return rows_to_protocol(unsynced_records(conn, limit=limit))


def count_unsynced(conn: sqlite3.Connection) -> int:
    return int(conn.execute(f"SELECT COUNT(*) FROM requests WHERE {_UNSYNCED}").fetchone()[0])


def set_aside(conn: sqlite3.Connection, rejected: Iterable[tuple[UUID | str, str]]) -> int:
    """Keep rows the cloud refused out of later batches, with the reason (shown by ``cloud status``)."""
    with transaction(conn):
        cursor = conn.executemany(
            "UPDATE requests SET sync_rejected = ? WHERE request_uid = ? AND synced_at IS NULL",
            [(message[:1000], str(uid)) for uid, message in rejected],
        )
    return cursor.rowcount


def rejected_rows(conn: sqlite3.Connection, *, limit: int) -> tuple[int, list[tuple[str, str]]]:
    """How many rows are set aside, and the newest ``limit`` of them as (request_uid, reason)."""
    total = int(conn.execute("SELECT COUNT(*) FROM requests WHERE sync_rejected IS NOT NULL").fetchone()[0])
    newest = conn.execute(
        "SELECT request_uid, sync_rejected FROM requests WHERE sync_rejected IS NOT NULL "
        "ORDER BY started_at DESC LIMIT ?",
        (limit,),
    ).fetchall()
    return total, [(r[0], r[1]) for r in newest]


def mark_synced(conn: sqlite3.Connection, request_uids: Iterable[UUID | str], at: datetime) -> int:
    """Record a 2xx from the cloud for these rows; nothing is deleted."""
    stamp = ts(at)
    with transaction(conn):
        cursor = conn.executemany(
            "UPDATE requests SET synced_at = ? WHERE request_uid = ?", [(stamp, str(u)) for u in request_uids]
        )
    return cursor.rowcount


@contextmanager
def transaction(conn: sqlite3.Connection, mode: str = "IMMEDIATE") -> Iterator[sqlite3.Connection]:
    """``with transaction(conn):`` for connections in autocommit mode (``isolation_level=None``)."""
    conn.execute(f"BEGIN {mode}")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


# ---------------------------------------------------------------------------------------------------
# The batch writer


T = TypeVar("T")


class BatchWriter(Generic[T]):
    """Moves finished calls off the proxy's event loop and into SQLite in batched transactions.

    ``submit`` never blocks, never raises and makes no system call: it appends to a deque. The
    writer thread wakes every :data:`WRITE_EVERY_S` (not per call: waking a thread per call costs
    a futex wake and a GIL hand-off on the proxy's hot path), turns each item into its
    :class:`StoredCall` rows with ``prepare`` (pricing and row building happen there; a batch results
    download is one item of many rows), and inserts what it found in one transaction per
    :data:`MAX_BATCH` items. A request_uid already stored is skipped, never an error: results downloaded
    twice carry the same uids. ``flush`` and ``close`` wake it at once.
    """

    def __init__(
        self,
        db_path: Path,
        prepare: Callable[[T], StoredCall | Sequence[StoredCall] | None],
        health: Health,
        *,
        max_batch: int = MAX_BATCH,
        interval: float = WRITE_EVERY_S,
        on_stored: Callable[[list[T]], None] | None = None,
    ) -> None:
        self.db_path = db_path
        self.prepare = prepare
        self.health = health
        # Told (in the writer thread) of items that are committed, or that can never become a row:
        # the journal forgets their records. An item that failed to commit is not told of.
        self.on_stored = on_stored
        self.max_batch = max_batch
        self.interval = interval
        self._items: deque[T] = deque()
        self._markers: list[threading.Event] = []
        self._markers_lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.written = 0

    def start(self) -> None:
        conn = open_store(self.db_path)  # fail fast (in the caller) if the database is unusable
        self._stopping = False
        self._thread = threading.Thread(
            target=self._run, args=(conn,), name="halton-store-writer", daemon=True
        )
        self._thread.start()

    def submit(self, item: T) -> None:
        if len(self._items) >= MAX_QUEUE:
            # Fail open: the proxy never waits on the disk. Counted and shown by status; the call's
            # journal record stays, and the next replay (at stop or start) stores it.
            self.health.error("store.queue_full", "writer queue full; row left to the journal")
            return
        self._items.append(item)  # deque.append is atomic: no lock, no wake-up

    def pending(self) -> int:
        return len(self._items)

    def flush(self, timeout: float = 10.0) -> bool:
        """Block until everything submitted before this call is committed."""
        done = threading.Event()
        with self._markers_lock:
            self._markers.append(done)
        self._wake.set()
        return done.wait(timeout)

    def close(self, timeout: float = 30.0) -> None:
        """Drain the queue, commit everything, stop the thread."""
        if self._thread is None:
            return
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            logger.error("store writer did not finish within %.0fs; %d items left", timeout, self.pending())
        self._thread = None

    def _run(self, conn: sqlite3.Connection) -> None:
        last_counts = time.monotonic()
        try:
            while True:
                self._wake.wait(self.interval)
                self._wake.clear()
                stopping = self._stopping
                # Markers first: every item submitted before a flush() is already in the deque.
                with self._markers_lock:
                    markers, self._markers = self._markers, []
                while self._items:
                    batch = []
                    while self._items and len(batch) < self.max_batch:
                        batch.append(self._items.popleft())
                    self._write(conn, batch)
                    last_counts = time.monotonic()
                if time.monotonic() - last_counts >= PERSIST_COUNTS_EVERY_S or markers or stopping:
                    self._write(conn, [])  # no call came: still persist fresh error counts
                    last_counts = time.monotonic()
                for marker in markers:
                    marker.set()
                if stopping:
                    return
        finally:
            conn.close()

    def _write(self, conn: sqlite3.Connection, items: list[T]) -> None:
        calls: list[tuple[T, list[StoredCall]]] = []
        unstorable: list[T] = []
        for item in items:
            try:
                prepared = self.prepare(item)
            except Exception as exc:
                logger.exception("could not turn a captured call into a row")
                self.health.error("store.prepare", repr(exc))
                unstorable.append(item)
                continue
            rows = [prepared] if isinstance(prepared, StoredCall) else list(prepared or ())
            if rows:
                calls.append((item, rows))
            else:
                unstorable.append(item)
        if unstorable:
            self._stored(unstorable)
        counts = self.health.take_unpersisted()
        if not calls and not counts:
            return
        for attempt in range(3):
            try:
                with transaction(conn):
                    inserted = insert_calls(
                        conn, [row for _, rows in calls for row in rows], skip_existing=True
                    )
                    add_error_counts(conn, counts)
                self.written += inserted
                self.health.event("store.rows", inserted)
                self._stored([item for item, _ in calls])
                return
            except sqlite3.OperationalError as exc:
                # "database is locked" outlasting busy_timeout (a long report?) is worth a retry.
                logger.warning("store write failed (attempt %d): %s", attempt + 1, exc)
                time.sleep(0.2 * (attempt + 1))
            except sqlite3.DatabaseError as exc:
                logger.exception("store write failed; writing rows one by one")
                self.health.error("store.write", repr(exc))
                break
        self.health.give_back(counts)
        self._write_one_by_one(conn, calls)

    def _write_one_by_one(self, conn: sqlite3.Connection, calls: list[tuple[T, list[StoredCall]]]) -> None:
        for item, rows in calls:
            try:
                with transaction(conn):
                    inserted = insert_calls(conn, rows, skip_existing=True)
                self.written += inserted
                self.health.event("store.rows", inserted)
                self._stored([item])
            except sqlite3.DatabaseError as exc:
                # Its journal record stays: the next replay (at stop or start) tries it again.
                logger.error("could not store row %s: %s", rows[0].row.request_uid, exc)
                self.health.error("store.write", repr(exc))

    def _stored(self, items: list[T]) -> None:
        if self.on_stored is None:
            return
        try:
            self.on_stored(items)
        except Exception as exc:
            logger.exception("releasing stored calls from the journal failed")
            self.health.error("journal.release", repr(exc))
