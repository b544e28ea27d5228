"""The cloud supervisor: a thread in the daemon that starts the sync worker when it should run.

Every tick (:data:`DEFAULT_TICK_S`, at most 15 s; ``HALTON_METER_SUPERVISOR_SECONDS`` sets it lower,
e.g. in tests) it re-reads ``config.toml`` and the credentials: ``enabled = true`` with credentials on
disk starts the worker, anything else stops it. So ``cloud connect`` run from a terminal, or
``cloud disconnect``, takes effect within one tick without restarting the daemon. At boot it heals a
placeholder ``base_url`` (see :mod:`.config_table`). Each tick also touches ``daemon.json``: the
daemon's heartbeat, which tells ``status`` since when a crashed daemon has been gone.

It also backs the loopback routes of the dashboard (:mod:`halton_meter.control`): the state document,
and pairings started from the browser, which run here in the background and write the same files as
``cloud connect``.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from typing import Any

from halton_meter import pidfile
from halton_meter.cloud import config_table, credentials, link, loopback, pairing, state
from halton_meter.cloud.client import CloudClient, CloudError, CloudRefused, PairingTicket, host_of
from halton_meter.cloud.worker import SyncWorker
from halton_meter.health import Health
from halton_meter.settings import (
    CLOUD_URL_ENV,
    DEFAULT_CLOUD_URL,
    Settings,
    SettingsError,
    cloud_base_url,
    load_settings,
)
from halton_meter.store import StoreError, connect

logger = logging.getLogger(__name__)

SUPERVISOR_ENV = "HALTON_METER_SUPERVISOR_SECONDS"
DEFAULT_TICK_S = 10.0
MAX_TICK_S = 15.0


def tick_seconds() -> float:
    raw = os.environ.get(SUPERVISOR_ENV, "").strip()
    if not raw:
        return DEFAULT_TICK_S
    try:
        value = float(raw)
    except ValueError:
        logger.warning("%s=%r is not a number of seconds; using %gs", SUPERVISOR_ENV, raw, DEFAULT_TICK_S)
        return DEFAULT_TICK_S
    return min(max(value, 0.01), MAX_TICK_S)


class ConnectRefused(RuntimeError):
    """A dashboard pairing cannot start; ``status`` is the HTTP status for the loopback answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class BackgroundPairing:
    """A pairing started from the dashboard: the code is shown in the browser, the daemon polls."""

    def __init__(
        self,
        supervisor: CloudSupervisor,
        client: CloudClient,
        ticket: PairingTicket,
        *,
        base_url_by_meter: bool = False,
        dashboard_origin: str | None = None,
    ) -> None:
        self.supervisor = supervisor
        self.client = client
        self.ticket = ticket
        self.base_url_by_meter = base_url_by_meter
        self.dashboard_origin = dashboard_origin
        self.status = "pending"
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="halton-cloud-pairing", daemon=True)

    def start(self) -> BackgroundPairing:
        self._thread.start()
        return self

    def cancel(self) -> None:
        """Stop waiting and withdraw the code now: the poll thread may sit in a long-poll for 25 s, and a
        stopping daemon must not leave a code anyone can approve (the cancel is capped at a few seconds)."""
        self._stop.set()
        if self.status == "pending":
            with CloudClient(self.client.base_url) as client:
                logger.info("%s", pairing.withdraw(client, self.ticket))

    @property
    def pending(self) -> bool:
        return self.status == "pending" and state.now_utc() < self.ticket.expires_at

    def to_json(self) -> dict[str, Any]:
        return {**self.ticket.to_json(), "status": self.status, "error": self.error}

    def _run(self) -> None:
        paths = self.supervisor.paths
        try:
            approval = pairing.wait_for_approval(self.client, self.ticket, stop=self._stop)
            link.complete_pairing(
                paths,
                base_url=self.client.base_url,
                approval=approval,
                machine_id=self.supervisor.machine_id,
                hostname=link.hostname_snapshot(),
                base_url_by_meter=self.base_url_by_meter,
                dashboard_origin=self.dashboard_origin,
            )
            self.status = "approved"
            self.supervisor.poke()
        except pairing.PairingFailed as exc:
            self.status, self.error = exc.kind, str(exc)
            logger.warning("dashboard pairing ended: %s", exc)
            if exc.kind in pairing.WITHDRAW_ON and exc.kind != "cancelled":  # cancel() withdrew it
                logger.info("%s", pairing.withdraw(self.client, self.ticket))
        except Exception as exc:
            self.status, self.error = "failed", str(exc)
            logger.exception("dashboard pairing failed")
            self.supervisor.health.error("cloud.pairing", repr(exc))
        finally:
            self.client.close()


class CloudSupervisor:
    def __init__(
        self, settings: Settings, health: Health, machine_id: str, *, tick: float | None = None
    ) -> None:
        self.settings = settings
        self.paths = settings.paths
        self.health = health
        self.machine_id = machine_id
        self.tick_s = tick if tick is not None else tick_seconds()
        self.worker: SyncWorker | None = None
        self.pairing: BackgroundPairing | None = None
        self._fingerprint: tuple[str, str | None, str | None] | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        try:
            healed = config_table.heal_placeholder_base_url(self.paths)
        except (OSError, config_table.ConfigEditError) as exc:
            logger.error("could not heal the placeholder [cloud] base_url: %s", exc)
            self.health.error("cloud.config", str(exc))
            healed = None
        if healed is not None:
            self.health.event("cloud.base_url_healed")
        self._reload()
        if os.environ.get(CLOUD_URL_ENV) and config_table.is_placeholder(self.settings.cloud_base_url):
            # Never rewritten (the user chose it); only said, since .test/.example/.invalid never resolve.
            logger.warning(
                "%s=%s has a placeholder-style host: kept; if it never resolves, point it at your cloud "
                "(or unset it to use %s)",
                CLOUD_URL_ENV,
                self.settings.cloud_base_url,
                DEFAULT_CLOUD_URL,
            )
        self._thread = threading.Thread(target=self._run, name="halton-cloud-supervisor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        with self._lock:
            if self.pairing is not None:
                self.pairing.cancel()
            if self.worker is not None:
                self.worker.stop()
                self.worker = None

    def poke(self) -> None:
        """Tick now (a pairing just completed)."""
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            pidfile.heartbeat(self.paths)
            try:
                self.tick()
            except Exception as exc:  # never let the supervisor die: the next tick may do better
                logger.exception("cloud supervisor tick failed")
                self.health.error("cloud.supervisor", repr(exc))
            self._wake.wait(self.tick_s)
            self._wake.clear()

    def _reload(self) -> None:
        try:
            fresh = load_settings(self.paths.home)
        except SettingsError as exc:
            # Keep the last good settings: a typo in config.toml must not stop a running sync.
            logger.error("config.toml: %s (keeping the previous cloud settings)", exc)
            self.health.error("cloud.settings", str(exc))
            return
        self.settings = fresh

    def tick(self) -> None:
        self._reload()
        try:
            saved = credentials.load_credentials(self.paths)
        except credentials.CredentialsProblem as exc:
            logger.error("%s", exc)
            self.health.error("cloud.credentials", str(exc))
            saved = None
        wanted = self.settings.cloud_enabled and saved is not None
        # What the CLI may have changed since the last tick: a worker waiting out a backoff is woken
        # when the pairing, the pause or the base URL changes (`cloud resume`, a re-pairing...).
        fingerprint = (
            self.settings.cloud_base_url,
            saved.pairing_id if saved else None,
            self._paused_reason(),
        )
        with self._lock:
            if wanted and (self.worker is None or not self.worker.alive):
                self.worker = SyncWorker(self.paths, self.health, lambda: self.settings).start()
                logger.info("cloud sync on: worker started (base_url %s)", self.settings.cloud_base_url)
            elif not wanted and self.worker is not None:
                self.worker.stop()
                self.worker = None
                logger.info("cloud sync off: worker stopped")
            elif self.worker is not None and fingerprint != self._fingerprint:
                self.worker.wake()
            self._fingerprint = fingerprint

    def _paused_reason(self) -> str | None:
        try:
            conn = connect(self.paths.db, readonly=True)
        except (StoreError, sqlite3.Error):
            return None
        try:
            row = state.read_row(conn)
        finally:
            conn.close()
        return row["paused_reason"] if row else None

    # -- the loopback routes -------------------------------------------------------------------

    @property
    def dashboard_origin(self) -> str:
        # As on disk now: a pairing from the terminal records the dashboard between two ticks.
        return self._fresh_settings().cloud_dashboard_origin

    def _fresh_settings(self) -> Settings:
        """The settings as on disk now, not at the last tick: a pairing or disconnect shows at once."""
        try:
            return load_settings(self.paths.home)
        except SettingsError:
            return self.settings

    def state_document(self) -> dict[str, Any]:
        status = state.with_daemon(state.load_status(self._fresh_settings()), state.DAEMON_RUNNING)
        with self._lock:
            if self.pairing is not None:
                status.pairing = self.pairing.to_json()
        return status.to_json()

    def connect(self, base_url: str | None, origin: str) -> tuple[int, dict[str, Any]]:
        """Start (or return the running) dashboard pairing for the page at ``origin``; raises
        :class:`ConnectRefused`."""
        with self._lock:
            if self.pairing is not None and self.pairing.pending:
                return 200, self.pairing.to_json()
        settings = self._fresh_settings()
        try:
            target = cloud_base_url(base_url) if base_url else settings.cloud_base_url
        except ValueError as exc:
            raise ConnectRefused(422, f"base_url: {exc}") from None
        refusal = loopback.check_connect_target(
            base_url=target, origin=origin, configured_base_url=settings.cloud_base_url
        )
        if refusal is not None:
            raise ConnectRefused(refusal.status, refusal.message)
        self._retire_previous_pairing(settings)
        client = CloudClient(target)
        try:
            ticket = pairing.request_code(
                client, machine_id=self.machine_id, hostname=link.hostname_snapshot()
            )
        except pairing.PairingFailed as exc:
            client.close()
            raise ConnectRefused(502, str(exc)) from None
        background = BackgroundPairing(
            self,
            client,
            ticket,
            base_url_by_meter=not base_url and settings.cloud_base_url_by_meter,
            dashboard_origin=None if settings.cloud_dashboard_origin_chosen else ticket.dashboard_origin,
        )
        with self._lock:
            if self.pairing is not None:
                self.pairing.cancel()
            self.pairing = background.start()
        logger.info("dashboard pairing started with %s: code %s", host_of(target), ticket.code)
        return 202, background.to_json()

    def _retire_previous_pairing(self, settings: Settings) -> None:
        """A live pairing is only replaced from the terminal; a revoked one may be replaced from here."""
        current = state.load_status(settings)
        if current.state == state.NOT_CONFIGURED:
            return
        if current.paused_reason != state.PAUSED_UNAUTHORISED:
            raise ConnectRefused(
                409,
                f"this machine is already paired with workspace {current.workspace_slug!r}: to pair it again, "
                "run `halton-meter cloud connect` in a terminal (or `halton-meter cloud disconnect` first)",
            )
        existing = credentials.load_credentials(self.paths)
        if existing is not None:
            with CloudClient(settings.cloud_base_url) as client:
                try:
                    client.disconnect(existing.token)
                except CloudRefused as exc:
                    if exc.status != 401:
                        logger.warning("revoking the previous token: %s", exc)
                except CloudError as exc:
                    logger.warning("could not revoke the previous token: %s", exc)
        link.wipe_local(self.paths)
