"""What ``halton-meter status`` reports: the daemon, today's calls and spend, errors, the cloud.

Reads the pid lock, the daemon's state file, its loopback ``/v1/health`` and SQLite; never needs the
daemon to be up (its row then says so).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from halton_meter.cloud.state import NOT_CONFIGURED, CloudStatus, load_status, now_utc, with_daemon
from halton_meter.limits_status import LimitsStatus, limits_status
from halton_meter.pidfile import last_seen, read_state, running_pid, started_at
from halton_meter.report import Group, capture_error_counts, parse_period, spend_report
from halton_meter.settings import Settings
from halton_meter.store import StoreError, connect

logger = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 2.0


@dataclass
class DaemonState:
    state: str  # "running", "unresponsive", "stopped"
    pid: int | None = None
    host: str | None = None
    port: int | None = None
    health: dict[str, Any] | None = None
    live: dict[str, Any] | None = None  # /v1/status, when running
    started_at: datetime | None = None
    last_seen_at: datetime | None = None  # its last heartbeat, or its clean stop: "stopped since"

    @property
    def listen(self) -> str | None:
        return f"{self.host}:{self.port}" if self.host and self.port else None

    def to_json(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "pid": self.pid,
            "listen": self.listen,
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "last_seen_at": self.last_seen_at.isoformat() if self.last_seen_at else None,
        }


def probe_daemon(settings: Settings, *, live: bool = False) -> DaemonState:
    paths = settings.paths
    pid = running_pid(paths.pidfile)
    state = read_state(paths) or {}
    seen = {"started_at": started_at(state), "last_seen_at": last_seen(paths, state)}
    if pid is None:
        # daemon.json outlives a crash or kill -9: its heartbeat says since when the daemon is gone.
        return DaemonState("stopped", **seen)
    host = state.get("host") or settings.listen_host
    port = state.get("port") or settings.port
    daemon = DaemonState(
        "unresponsive", pid=pid if pid > 0 else state.get("pid"), host=host, port=port, **seen
    )
    # Imported only when a daemon holds the lock: httpx is the heaviest import `status` could pay.
    import httpx

    try:
        with httpx.Client(timeout=PROBE_TIMEOUT_S, trust_env=False) as client:
            response = client.get(f"http://{_url_host(host)}:{port}/v1/health")
            if response.status_code == 200 and response.json().get("service") == "halton-meter":
                daemon.state = "running"
                daemon.health = response.json()
                if live:
                    daemon.live = client.get(f"http://{_url_host(host)}:{port}/v1/status").json()
    except (httpx.HTTPError, ValueError) as exc:
        logger.debug("daemon did not answer on %s:%s: %s", host, port, exc)
    return daemon


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


@dataclass
class Status:
    home: str
    daemon: DaemonState
    today: Group | None
    capture_errors: dict[str, int] = field(default_factory=dict)
    live_errors: dict[str, int] = field(default_factory=dict)
    cloud_state: str = NOT_CONFIGURED
    cloud: CloudStatus | None = None
    db_problem: str | None = None
    limits: LimitsStatus | None = None

    @property
    def capture_error_total(self) -> int:
        return sum(self.capture_errors.values())

    def to_json(self) -> dict[str, Any]:
        today = self.today
        return {
            "home": self.home,
            "daemon": self.daemon.to_json(),
            "today": {
                "calls": today.calls if today else 0,
                "cost_usd": str(today.cost_usd) if today and today.cost_usd is not None else None,
                "unpriced_calls": today.unpriced_calls if today else 0,
                "errors": today.errors if today else 0,
            },
            "capture_errors": {
                "today": self.capture_error_total,
                "by_kind": self.capture_errors,
                "since_start": self.live_errors,
            },
            "cloud": self._cloud_json(),
            "limits": self.limits.to_json() if self.limits else None,
            "db_problem": self.db_problem,
        }

    def _cloud_json(self) -> dict[str, Any]:
        cloud = self.cloud
        if cloud is None or cloud.state == NOT_CONFIGURED:
            return {"state": self.cloud_state}
        summary = cloud.to_json()
        keys = (
            "state",
            "daemon_running",
            "paused_reason",
            "degraded_reason",
            "workspace",
            "unsynced_rows",
            "rejected_rows",
            "last_sync_at",
            "last_error",
        )
        return {key: summary[key] for key in keys}


def collect_status(settings: Settings) -> Status:
    # The daemon persists its error counts within a second (store.BatchWriter), so SQLite is the
    # one source for "today"; the live counters (since start) ride along in --json.
    daemon = probe_daemon(settings, live=True)
    status = Status(home=str(settings.home), daemon=daemon, today=None)
    status.cloud = with_daemon(
        load_status(settings), daemon.state, started_at=daemon.started_at, last_seen_at=daemon.last_seen_at
    )
    status.cloud_state = status.cloud.state
    if daemon.live:
        status.live_errors = daemon.live.get("errors", {})
    try:
        conn = connect(settings.paths.db, readonly=True)
    except (StoreError, OSError) as exc:
        status.db_problem = str(exc)
        return status
    try:
        status.today = spend_report(conn, parse_period("today"), dimensions=()).totals
        status.capture_errors = capture_error_counts(conn)
        status.limits = limits_status(
            conn,
            now=now_utc(),
            fresh_minutes=settings.limits_fresh_minutes,
            paired=status.cloud_state != NOT_CONFIGURED,
            cloud_problem=_cloud_problem(status.cloud),
        )
    except Exception as exc:  # a status command must still print what it can
        logger.warning("reading db.sqlite failed", exc_info=True)
        status.db_problem = f"cannot read {settings.paths.db}: {exc}"
    finally:
        conn.close()
    return status


def _cloud_problem(cloud: CloudStatus | None) -> str | None:
    """What keeps the cloud from answering the meter, as the limits line says it."""
    if cloud is None:
        return None
    if cloud.paused_reason:
        return f"cloud sync paused ({cloud.paused_reason})"
    if cloud.last_error:
        return f"cloud unreachable ({cloud.last_error})"
    return None
