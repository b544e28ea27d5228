"""The ``cloud_state`` row and the states ``cloud status`` reports.

States, decided in this order (the spec's four, and ``NOT-RUNNING``, which it implies but does not
name: every other state describes a sync that runs inside the daemon):

* ``NOT-CONFIGURED`` - ``[cloud] enabled = false``, or enabled without credentials (nothing flows);
* ``NOT-RUNNING`` - paired, but no daemon holds the lock, so no worker runs: rows wait locally (the
  spec's "daemon not running"). Whatever the row says the worker last saw (a pause, a DEGRADED flag) is
  still reported beside it, and ``daemon.last_seen_at`` says since when the daemon has been gone. Only
  a caller that knows the daemon's state decides this (``cloud status``, ``status``); the daemon itself
  never reports it;
* ``PAUSED`` - ``paused_reason`` is set: ``paused_manual`` (``cloud pause``), ``paused_unauthorised``
  (a real HTTP 401 from the cloud, nothing else), ``paused_forbidden`` (HTTP 403: machine removed);
* ``DEGRADED`` - rows are waiting (unsynced > 0) and the worker flagged the backlog as not draining:
  either the last :data:`DEGRADED_AFTER_FAILURES` or more sync attempts in a row failed with a
  transient error (no answer, 5xx, 429/503), or the unsynced count grew after each of the last
  :data:`BACKLOG_WINDOW` passes even though uploads succeed (rows arrive faster than they upload).
  Transient: the first pass that leaves the backlog empty (or shrinking with no failure) clears it,
  and so does a successful ``cloud sync`` from the terminal;
* ``ACTIVE`` - otherwise: sync is running, no errors.

``Last sync`` is when a pass last ended without an error (its batches were accepted, or there was
nothing to send); ``Last reconcile`` is when this machine's per-day rows and cost were last compared with
the cloud's (``cloud reconcile``, or the worker every ``[cloud] reconcile_hours``), with what it found.

The worker (in the daemon) and the CLI (``cloud sync``, ``pause``, ``resume``) both write the row; each
update names the columns it owns and the ``pairing_id`` it worked for, so a worker still holding an
old pairing's token can never mark the new pairing paused.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from halton_meter.cloud.credentials import CredentialsProblem, load_credentials
from halton_meter.settings import Settings
from halton_meter.store import StoreError, connect, count_unsynced, parse_ts, rejected_rows, transaction, ts

ACTIVE = "ACTIVE"
DEGRADED = "DEGRADED"
PAUSED = "PAUSED"
NOT_CONFIGURED = "NOT-CONFIGURED"
NOT_RUNNING = "NOT-RUNNING"
PAUSED_MANUAL = "paused_manual"
PAUSED_UNAUTHORISED = "paused_unauthorised"
PAUSED_FORBIDDEN = "paused_forbidden"

DAEMON_RUNNING = "running"
DAEMON_UNRESPONSIVE = "unresponsive"
DAEMON_STOPPED = "stopped"

DEGRADED_AFTER_FAILURES = 2
BACKLOG_WINDOW = 3
REJECTED_SHOWN = 20


def now_utc() -> datetime:
    return datetime.now(UTC)


# ---------------------------------------------------------------------------------------------------
# The row


def read_row(conn: sqlite3.Connection) -> dict[str, Any] | None:
    try:
        row = conn.execute("SELECT * FROM cloud_state WHERE id = 1").fetchone()
    except sqlite3.OperationalError:  # a database not yet migrated by a newer meter: not paired
        return None
    return dict(row) if row is not None else None


def write_pairing(conn: sqlite3.Connection, values: dict[str, Any]) -> None:
    """A new pairing replaces the row entirely: its pauses, errors and counters start afresh."""
    columns = ["id", *values]
    with transaction(conn):
        conn.execute(
            f"INSERT OR REPLACE INTO cloud_state ({', '.join(columns)}) "
            f"VALUES ({', '.join('?' * len(columns))})",
            [1, *values.values()],
        )


def clear(conn: sqlite3.Connection) -> None:
    with transaction(conn):
        conn.execute("DELETE FROM cloud_state")


def set_paused(
    conn: sqlite3.Connection, pairing_id: str, reason: str, detail: str | None, *, keep_manual: bool = True
) -> bool:
    """Pause sync; a manual pause is kept unless ``keep_manual`` is off (the user's choice wins)."""
    guard = " AND (paused_reason IS NULL OR paused_reason != 'paused_manual')" if keep_manual else ""
    with transaction(conn):
        cursor = conn.execute(
            "UPDATE cloud_state SET paused_reason = ?, paused_detail = ?, degraded_reason = NULL "
            f"WHERE pairing_id = ?{guard}",
            (reason, detail, pairing_id),
        )
    return cursor.rowcount > 0


def clear_pause(conn: sqlite3.Connection, pairing_id: str) -> None:
    with transaction(conn):
        conn.execute(
            "UPDATE cloud_state SET paused_reason = NULL, paused_detail = NULL, consecutive_failures = 0, "
            "last_error = NULL, last_error_at = NULL WHERE pairing_id = ?",
            (pairing_id,),
        )


def record_success(
    conn: sqlite3.Connection, pairing_id: str, *, at: datetime, accepted: int, duplicates: int, uploaded: bool
) -> None:
    """A pass left nothing it could send behind (or sent what it read)."""
    upload = ", last_upload_at = :at" if uploaded else ""
    with transaction(conn):
        conn.execute(
            "UPDATE cloud_state SET last_sync_at = :at, consecutive_failures = 0, last_error = NULL, "
            "last_error_at = NULL, rows_accepted = rows_accepted + :accepted, "
            f"rows_duplicate = rows_duplicate + :duplicates{upload} WHERE pairing_id = :pairing",
            {"at": ts(at), "accepted": accepted, "duplicates": duplicates, "pairing": pairing_id},
        )


def record_progress(
    conn: sqlite3.Connection, pairing_id: str, *, accepted: int, duplicates: int, at: datetime
) -> None:
    """Some batches went through before a pass stopped on an error."""
    with transaction(conn):
        conn.execute(
            "UPDATE cloud_state SET last_upload_at = ?, rows_accepted = rows_accepted + ?, "
            "rows_duplicate = rows_duplicate + ? WHERE pairing_id = ?",
            (ts(at), accepted, duplicates, pairing_id),
        )


def record_failure(
    conn: sqlite3.Connection, pairing_id: str, *, at: datetime, error: str, count: bool = True
) -> int:
    """A failed attempt; returns the consecutive failures so far (``count`` off: just note the error)."""
    with transaction(conn):
        conn.execute(
            "UPDATE cloud_state SET last_error = ?, last_error_at = ?, "
            f"consecutive_failures = consecutive_failures + {1 if count else 0} WHERE pairing_id = ?",
            (error[:1000], ts(at), pairing_id),
        )
        row = conn.execute(
            "SELECT consecutive_failures FROM cloud_state WHERE pairing_id = ?", (pairing_id,)
        ).fetchone()
    return int(row[0]) if row else 0


def set_degraded(conn: sqlite3.Connection, pairing_id: str, reason: str | None) -> None:
    with transaction(conn):
        conn.execute("UPDATE cloud_state SET degraded_reason = ? WHERE pairing_id = ?", (reason, pairing_id))


# ---------------------------------------------------------------------------------------------------
# What `cloud status` shows


@dataclass
class CloudStatus:
    state: str
    enabled: bool
    base_url: str
    paused_reason: str | None = None
    paused_detail: str | None = None
    workspace_id: str | None = None
    workspace_slug: str | None = None
    workspace_name: str | None = None
    machine_id: str | None = None
    hostname: str | None = None
    device_id: str | None = None
    paired_at: str | None = None
    last_sync_at: datetime | None = None
    last_upload_at: datetime | None = None
    last_reconcile_at: datetime | None = None
    last_reconcile: dict[str, Any] | None = None  # halton_meter.cloud.reconcile.ReconcileResult.to_json()
    unsynced_rows: int = 0
    rejected_rows: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)
    last_error: str | None = None
    last_error_at: datetime | None = None
    degraded_reason: str | None = None
    rows_accepted: int = 0
    rows_duplicate: int = 0
    problem: str | None = None
    daemon_running: bool | None = None
    # "running", "unresponsive" (holds the lock, does not answer) or "stopped"; None: not asked.
    daemon_state: str | None = None
    daemon_started_at: datetime | None = None
    daemon_last_seen_at: datetime | None = None  # its last heartbeat, or when it stopped cleanly
    pairing: dict[str, Any] | None = None  # a dashboard-started pairing the daemon is waiting on
    paired: bool = False

    def age_seconds(self, when: datetime | None, now: datetime | None = None) -> float | None:
        if when is None:
            return None
        return max(((now or now_utc()) - when).total_seconds(), 0.0)

    def to_json(self, now: datetime | None = None) -> dict[str, Any]:
        def stamp(value: datetime | None) -> str | None:
            return value.isoformat() if value else None

        workspace = (
            {"id": self.workspace_id, "slug": self.workspace_slug, "name": self.workspace_name}
            if self.workspace_id
            else None
        )
        age = self.age_seconds(self.last_sync_at, now)
        return {
            "state": self.state,
            "paused_reason": self.paused_reason,
            "paused_detail": self.paused_detail,
            "enabled": self.enabled,
            "base_url": self.base_url,
            "workspace": workspace,
            "machine_id": self.machine_id,
            "hostname": self.hostname,
            "device_id": self.device_id,
            "paired_at": self.paired_at,
            "last_sync_at": stamp(self.last_sync_at),
            "last_sync_age_seconds": round(age, 1) if age is not None else None,
            "last_upload_at": stamp(self.last_upload_at),
            "last_reconcile_at": stamp(self.last_reconcile_at),
            "last_reconcile": self.last_reconcile,
            "unsynced_rows": self.unsynced_rows,
            "rejected_rows": self.rejected_rows,
            "rejected": [{"request_uid": uid, "reason": reason} for uid, reason in self.rejected],
            "last_error": self.last_error,
            "last_error_at": stamp(self.last_error_at),
            "degraded_reason": self.degraded_reason,
            "rows_accepted": self.rows_accepted,
            "rows_duplicate": self.rows_duplicate,
            "daemon_running": self.daemon_running,
            "daemon": {
                "state": self.daemon_state,
                "started_at": stamp(self.daemon_started_at),
                "last_seen_at": stamp(self.daemon_last_seen_at),
            },
            "pairing": self.pairing,
            "problem": self.problem,
        }


def _reconcile_result(row: dict[str, Any]) -> dict[str, Any] | None:
    text = row.get("last_reconcile_result")  # absent before store migration 3
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:  # written by this module only: an unreadable value is shown as unknown, not fatal
        return None


def _when(value: str | None) -> datetime | None:
    return parse_ts(value) if value else None


def classify(
    *,
    enabled: bool,
    paired: bool,
    paused_reason: str | None,
    degraded_reason: str | None,
    unsynced: int,
    daemon_stopped: bool = False,
) -> str:
    if not enabled or not paired:
        return NOT_CONFIGURED
    if daemon_stopped:
        return NOT_RUNNING
    if paused_reason:
        return PAUSED
    if degraded_reason and unsynced > 0:
        return DEGRADED
    return ACTIVE


def collect(
    conn: sqlite3.Connection | None,
    *,
    enabled: bool,
    base_url: str,
    has_credentials: bool,
    problem: str | None = None,
) -> CloudStatus:
    """The status from the database (``conn`` None: no database yet)."""
    status = CloudStatus(state=NOT_CONFIGURED, enabled=enabled, base_url=base_url, problem=problem)
    if conn is None:
        return status
    row = read_row(conn)
    try:
        status.unsynced_rows = count_unsynced(conn)
        status.rejected_rows, status.rejected = rejected_rows(conn, limit=REJECTED_SHOWN)
    except sqlite3.OperationalError as exc:  # an older schema: the daemon migrates it at start
        status.problem = status.problem or f"db.sqlite is not migrated yet ({exc}): run `halton-meter start`"
    if row is not None:
        status.paused_reason = row["paused_reason"]
        status.paused_detail = row["paused_detail"]
        status.workspace_id = row["workspace_id"]
        status.workspace_slug = row["workspace_slug"]
        status.workspace_name = row["workspace_name"]
        status.machine_id = row["machine_id"]
        status.hostname = row["hostname"]
        status.device_id = row["device_id"]
        status.paired_at = row["paired_at"]
        status.last_sync_at = _when(row["last_sync_at"])
        status.last_upload_at = _when(row["last_upload_at"])
        status.last_reconcile_at = _when(row["last_reconcile_at"])
        status.last_reconcile = _reconcile_result(row)
        status.last_error = row["last_error"]
        status.last_error_at = _when(row["last_error_at"])
        status.degraded_reason = row["degraded_reason"]
        status.rows_accepted = row["rows_accepted"]
        status.rows_duplicate = row["rows_duplicate"]
    if enabled and status.problem is None:
        if not has_credentials:
            status.problem = (
                "[cloud] enabled = true but there are no credentials: run `halton-meter cloud connect`"
            )
        elif row is None:
            status.problem = (
                "credentials exist but db.sqlite has no cloud_state row: run `halton-meter cloud connect`"
            )
    status.paired = has_credentials and row is not None
    status.state = classify(
        enabled=enabled,
        paired=status.paired,
        paused_reason=status.paused_reason,
        degraded_reason=status.degraded_reason,
        unsynced=status.unsynced_rows,
    )
    return status


def with_daemon(
    status: CloudStatus,
    daemon_state: str,
    *,
    started_at: datetime | None = None,
    last_seen_at: datetime | None = None,
) -> CloudStatus:
    """Add what the caller found out about the daemon; a stopped daemon makes a paired meter NOT-RUNNING."""
    status.daemon_state = daemon_state
    status.daemon_running = daemon_state == DAEMON_RUNNING
    status.daemon_started_at = started_at
    status.daemon_last_seen_at = last_seen_at
    status.state = classify(
        enabled=status.enabled,
        paired=status.paired,
        paused_reason=status.paused_reason,
        degraded_reason=status.degraded_reason,
        unsynced=status.unsynced_rows,
        daemon_stopped=daemon_state == DAEMON_STOPPED,
    )
    return status


def load_status(settings: Settings) -> CloudStatus:
    """What ``cloud status`` shows, read from the home directory (the daemon need not run)."""
    paths = settings.paths
    problem = None
    try:
        has_credentials = load_credentials(paths) is not None
    except CredentialsProblem as exc:
        has_credentials, problem = False, str(exc)
    common = {
        "enabled": settings.cloud_enabled,
        "base_url": settings.cloud_base_url,
        "has_credentials": has_credentials,
    }
    try:
        conn = connect(paths.db, readonly=True)
    except (StoreError, sqlite3.Error) as exc:
        return collect(None, problem=problem or str(exc), **common)
    try:
        return collect(conn, problem=problem, **common)
    finally:
        conn.close()


def ago(seconds: float | None) -> str:
    """``3s ago``, ``4m ago``, ``2h ago``, ``3d ago``; ``never``."""
    if seconds is None:
        return "never"
    if seconds < 60:
        return f"{int(seconds)}s ago"
    if seconds < 3600:
        return f"{int(seconds // 60)}m ago"
    if seconds < 86400:
        return f"{int(seconds // 3600)}h ago"
    return f"{int(seconds // 86400)}d ago"
