"""The cloud worker: a thread in the daemon that runs sync passes, backs off, pauses and flags DEGRADED.

Between passes it waits ``[cloud] sync_interval_seconds`` (at once again if a pass ran out of time
with rows left). After a transient failure it waits the delay :func:`retry_delay` computes: exactly
the server's ``Retry-After`` when it sent one (a 429/503 under pressure; bounded by
:data:`MAX_RETRY_AFTER_S` so a bogus one cannot stall sync for a day), else an exponential backoff
with jitter starting at the interval and capped at ``[cloud] retry_max_seconds`` (30 s). While it
waits out a backoff it asks the cloud's ``GET /healthz`` every ``[cloud] health_probe_seconds``
(5 s) and retries as soon as the cloud answers, so rows flow within seconds of the cloud coming back
however long it was away. A 401 or 403 pauses sync (see :mod:`.state`); a transport error never
does. After each pass, and as a heartbeat while idle or paused, it reports its state to the cloud
(:meth:`SyncWorker._report`). Each pass re-reads the credentials and the ``cloud_state`` row, so
``cloud pause``, ``resume`` and a re-pairing from the CLI take effect on the next pass without a restart.
Every ``[cloud] reconcile_hours`` (daily), after a pass that left nothing unsent, it reconciles the last
:data:`~.reconcile.DEFAULT_DAYS` days with the cloud (:mod:`.reconcile`) and sends what the cloud lacked.
After a pass that uploaded rows (and once per heartbeat while idle) it asks the cloud for its price
catalogue (``GET /v1/rates``, If-None-Match of the one in force here); a new one is validated, installed
and prices the rows recorded unpriced (:mod:`halton_meter.rate_updates`), which are then sent again.
After each pass it sends the budget-limit blocks and overrides the cloud lacks and, every ``[limits]
refresh_seconds``, fetches the hard limits from ``GET /v1/daemon/whoami`` (:meth:`SyncWorker._sync_limits`).
"""

from __future__ import annotations

import itertools
import logging
import random
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from halton_meter import __version__
from halton_meter.cloud import reconcile, state
from halton_meter.cloud.client import CloudClient, CloudError
from halton_meter.cloud.credentials import CredentialsProblem, load_credentials
from halton_meter.cloud.sync import FORBIDDEN, TRANSIENT, UNAUTHORISED, PassResult, Uploader
from halton_meter.health import Health
from halton_meter.paths import MeterPaths
from halton_meter.settings import Settings
from halton_meter.store import count_unsynced, open_store, parse_ts

logger = logging.getLogger(__name__)

MAX_RETRY_AFTER_S = 300.0
STOP_TIMEOUT_S = 5.0


def retry_delay(
    failures: int,
    *,
    interval: float,
    cap: float,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> float:
    """How long to wait after ``failures`` failed attempts in a row.

    The server's ``Retry-After`` wins (it knows its load); otherwise exponential backoff from the sync
    interval with "equal jitter" (half fixed, half random, so meters do not stampede), capped at ``cap``.
    """
    if retry_after is not None:
        return min(max(retry_after, 0.0), MAX_RETRY_AFTER_S)
    ceiling = min(cap, interval * 2 ** min(max(failures - 1, 0), 32))
    return ceiling / 2 + (rng or random).uniform(0, ceiling / 2)


@dataclass(frozen=True)
class Wait:
    """What the worker does before its next pass: ``probe_every`` set = poll /healthz meanwhile."""

    seconds: float
    probe_every: float | None = None


class SyncWorker:
    """Started and stopped by :class:`~halton_meter.cloud.supervisor.CloudSupervisor`."""

    def __init__(self, paths: MeterPaths, health: Health, settings: Callable[[], Settings]) -> None:
        self.paths = paths
        self.health = health
        self.settings = settings
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._client: CloudClient | None = None
        self._history: deque[int] = deque(maxlen=state.BACKLOG_WINDOW + 1)
        self._pairing_id: str | None = None
        self._learned_batch_rows: int | None = None
        self._back_on_probe = False  # the last wait ended because /healthz answered
        self._last_report: tuple[str, str, str | None] | None = None  # (pairing, state, paused reason)
        self._next_report = 0.0  # monotonic time the next heartbeat is due
        self._reconcile_retry_at: datetime | None = None  # after a failed reconcile: not before then
        self._rates_etag: str | None = None  # the catalogue in force here, as GET /v1/rates names it
        self._rates_stamp: tuple[int, int] | None = None  # the installed file's, when _rates_etag was read
        self._next_rates_ask = 0.0  # monotonic time an idle meter asks for the cloud's catalogue again
        self._next_limits_ask = 0.0  # monotonic time the hard limits are fetched again
        self.passes = 0
        self.reports = 0

    def start(self) -> SyncWorker:
        self._thread = threading.Thread(target=self._run, name="halton-cloud-worker", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Stop after the current request; an abandoned request only means those rows are resent."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                logger.warning("cloud worker still finishing a request; leaving it behind")
            self._thread = None

    def wake(self) -> None:
        self._wake.set()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _wait(self, wait: Wait) -> None:
        """Sleep until the next pass is due, a wake-up, or (when probing) the cloud answers /healthz."""
        deadline = time.monotonic() + max(wait.seconds, 0.0)
        self._back_on_probe = False
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._stop.is_set():
                break
            step = min(remaining, wait.probe_every) if wait.probe_every else remaining
            if self._wake.wait(step) or time.monotonic() >= deadline:
                break
            if wait.probe_every and self._client is not None and self._client.healthy():
                logger.info("%s answers /healthz again: retrying now", self._client.host)
                self.health.event("cloud.back")
                self._back_on_probe = True
                break
        self._wake.clear()

    def _run(self) -> None:
        conn = open_store(self.paths.db)
        logger.info("cloud worker started")
        try:
            while not self._stop.is_set():
                try:
                    wait = self._step(conn)
                    self._report(conn)
                except Exception as exc:  # the worker must outlive any one bad pass
                    logger.exception("cloud sync pass failed")
                    self.health.error("cloud.worker", repr(exc))
                    wait = Wait(self.settings().cloud_sync_interval)
                self._wait(wait)
        finally:
            if self._client is not None:
                self._client.close()
            conn.close()
            logger.info("cloud worker stopped")

    def _step(self, conn: sqlite3.Connection) -> Wait:
        """One pass (or a reason not to run one); returns how to wait before the next."""
        settings = self.settings()
        interval = settings.cloud_sync_interval
        try:
            credentials = load_credentials(self.paths)
        except CredentialsProblem as exc:
            self.health.error("cloud.credentials", str(exc))
            return Wait(interval)
        row = state.read_row(conn)
        if credentials is None or row is None or row["pairing_id"] != credentials.pairing_id:
            return Wait(interval)  # mid-(dis)connect: the supervisor or the next pass will see it settled
        if credentials.pairing_id != self._pairing_id:
            self._pairing_id = credentials.pairing_id
            self._history.clear()
        if row["paused_reason"]:
            self._history.clear()
            return Wait(interval)
        uploader = Uploader(
            conn,
            self._client_for(settings),
            credentials.token,
            batch_rows=min(settings.cloud_batch_rows, self._learned_batch_rows or settings.cloud_batch_rows),
            batch_bytes=settings.cloud_batch_bytes,
        )

        def still_wanted() -> bool:
            current = state.read_row(conn)
            return (
                not self._stop.is_set()
                and current is not None
                and current["pairing_id"] == credentials.pairing_id
                and not current["paused_reason"]
            )

        result = uploader.run_pass(keep_going=still_wanted)
        self.passes += 1
        if uploader.batch_rows < settings.cloud_batch_rows:
            self._learned_batch_rows = uploader.batch_rows  # a 413 taught us the cloud's limit
        wait = self._record(conn, credentials.pairing_id, result, settings)
        self._sync_limits(conn, credentials.token, result, settings)
        if self._rates_due(result, settings) and self._pick_up_rates(conn, settings):
            return Wait(0.0)  # rows priced by the new catalogue are unsynced again: send them now
        due = result.stopped is None and not result.remaining and self._reconcile_due(row, settings)
        if due and self._reconcile(conn, credentials.token, credentials.pairing_id, row["machine_id"]):
            return Wait(0.0)  # rows the cloud lacked are unsynced again: send them now
        return wait

    def _sync_limits(
        self, conn: sqlite3.Connection, token: str, result: PassResult, settings: Settings
    ) -> None:
        """Hard limits (:mod:`halton_meter.spend_limits`): send the blocks and overrides the cloud lacks, and
        every ``[limits] refresh_seconds`` fetch the limits with each one's month-to-date spend. A failure is
        kept for ``status`` (which says why the meter stops enforcing once the figure is stale), never fatal."""
        from halton_meter import spend_limits

        if result.stopped is not None:
            spend_limits.save_failure(conn, result.error or "sync failed", state.now_utc())
            return
        client = self._client_for(settings)
        events = spend_limits.unsynced_events(conn, limit=500)
        if events:
            try:
                client.post_limit_events(token, [event.to_wire() for event in events])
                spend_limits.mark_events_synced(conn, [event.event_uid for event in events], state.now_utc())
                self.health.event("cloud.limit_events_synced", len(events))
            except CloudError as exc:
                self.health.error("cloud.limit_events", str(exc))
                logger.warning("could not send %d budget-limit event(s): %s", len(events), exc)
        now = time.monotonic()
        if now < self._next_limits_ask:
            return
        try:
            limits = spend_limits.parse_wire(client.spend_limits(token))
        except (CloudError, ValueError) as exc:
            spend_limits.save_failure(conn, str(exc), state.now_utc())
            self.health.error("cloud.limits", str(exc))
            logger.warning("could not fetch the hard limits: %s", exc)
            return
        spend_limits.save_fetched(conn, limits, state.now_utc())
        self._next_limits_ask = now + settings.limits_refresh_seconds

    def _rates_due(self, result: PassResult, settings: Settings) -> bool:
        """Ask for the cloud's catalogue after each pass that uploaded rows (the cloud answers an empty 304
        from memory), and while idle once per heartbeat, so an idle meter does not ask every few seconds."""
        if result.stopped is not None:
            return False
        now = time.monotonic()
        if not result.uploaded and now < self._next_rates_ask:
            return False
        self._next_rates_ask = now + settings.cloud_heartbeat
        return True

    def _pick_up_rates(self, conn: sqlite3.Connection, settings: Settings) -> bool:
        """Install the cloud's catalogue when it is not the one in force here; True when that priced rows
        the cloud must get again. A failure is logged and counted, never fatal: an outage only delays it."""
        from halton_meter.catalogue.etag import catalogue_etag
        from halton_meter.catalogue.installed import installed_path
        from halton_meter.rate_updates import UpdateError, in_force_document, install

        try:
            stat = installed_path(self.paths.catalogue).stat()
            stamp: tuple[int, int] | None = (stat.st_ino, stat.st_mtime_ns)
        except OSError:
            stamp = None
        if self._rates_etag is None or stamp != self._rates_stamp:  # `rates update` may have run meanwhile
            self._rates_etag = catalogue_etag(str(in_force_document(self.paths.catalogue)["version"]))
            self._rates_stamp = stamp
        try:
            document = self._client_for(settings).rates(self._rates_etag)
        except CloudError as exc:
            self.health.event("cloud.rates_failed")
            logger.warning("could not ask the cloud for its price catalogue: %s", exc)
            return False
        if document is None:
            return False
        try:
            result = install(settings, document, "the cloud's price catalogue (GET /v1/rates)", conn=conn)
        except UpdateError as exc:
            self.health.error("cloud.rates", str(exc))
            logger.warning("refused the cloud's price catalogue: %s", exc)
            return False
        self._rates_etag, self._rates_stamp = catalogue_etag(result.diff.new_version), None
        if not result.installed:
            return False
        self.health.event("cloud.rates_installed")
        repriced = result.repriced
        logger.info(
            "installed the cloud's price catalogue: %s; %s unpriced row(s) now priced",
            result.diff.summary(),
            repriced.newly_priced if repriced else 0,
        )
        return repriced is not None and repriced.changed > 0

    def _reconcile_due(self, row: dict, settings: Settings) -> bool:
        now = state.now_utc()
        if self._reconcile_retry_at is not None and now < self._reconcile_retry_at:
            return False
        last = row["last_reconcile_at"]
        return last is None or now - parse_ts(last) >= timedelta(hours=settings.cloud_reconcile_hours)

    def _reconcile(self, conn: sqlite3.Connection, token: str, pairing_id: str, machine_id: str) -> bool:
        """Reconcile once; True when it marked rows for re-sending."""
        try:
            result = reconcile.reconcile(
                conn,
                self._client_for(self.settings()),
                token,
                machine_id=machine_id,
                days=reconcile.DEFAULT_DAYS,
                now=state.now_utc(),
            )
        except CloudError as exc:
            # An hour, not the next pass: a cloud without the endpoint must not be asked every few seconds.
            self._reconcile_retry_at = state.now_utc() + timedelta(hours=1)
            self.health.error("cloud.reconcile", str(exc))
            logger.warning("cloud reconcile failed, next try in an hour: %s", exc)
            return False
        self._reconcile_retry_at = None
        reconcile.record(conn, pairing_id, result)
        self.health.event("cloud.reconciled")
        logger.info("cloud reconcile: %s", result.summary())
        return result.resent_rows > 0

    def _client_for(self, settings: Settings) -> CloudClient:
        if self._client is None or self._client.base_url != settings.cloud_base_url.rstrip("/"):
            if self._client is not None:
                self._client.close()
            self._client = CloudClient(settings.cloud_base_url)
        return self._client

    def _report(self, conn: sqlite3.Connection) -> None:
        """Tell the cloud this meter's state, unsynced rows and version: at once when the state changed
        since the last report, else as a heartbeat every ``[cloud] heartbeat_seconds`` (so an idle or
        paused meter is told apart from one that is off). A meter paused by a 401 or 403 stays quiet: the
        cloud refuses its token and knows why from its own records."""
        settings = self.settings()
        try:
            credentials = load_credentials(self.paths)
        except CredentialsProblem:
            return  # _step has said so already
        row = state.read_row(conn)
        if credentials is None or row is None or row["pairing_id"] != credentials.pairing_id:
            return
        reason = row["paused_reason"]
        if reason in (state.PAUSED_UNAUTHORISED, state.PAUSED_FORBIDDEN):
            return
        unsynced = count_unsynced(conn)
        current = state.classify(
            enabled=True,
            paired=True,
            paused_reason=reason,
            degraded_reason=row["degraded_reason"],
            unsynced=unsynced,
        )
        said = (credentials.pairing_id, current, reason)
        now = time.monotonic()
        if said == self._last_report and now < self._next_report:
            return
        answer = self._client_for(settings).report(
            credentials.token,
            {
                "state": current,
                "paused_reason": reason,
                "unsynced_rows": unsynced,
                "meter_version": __version__,
            },
        )
        self._last_report = said
        # A report that did not get through is tried again after a backoff's cap, not on every pass.
        retry = (
            settings.cloud_heartbeat
            if answer == 204
            else min(settings.cloud_heartbeat, settings.cloud_retry_max)
        )
        self._next_report = now + retry
        if answer == 204:
            self.reports += 1

    def _record(
        self, conn: sqlite3.Connection, pairing_id: str, result: PassResult, settings: Settings
    ) -> Wait:
        at = state.now_utc()
        interval = settings.cloud_sync_interval
        if result.synced:
            self.health.event("cloud.rows_synced", result.synced)
        if result.set_aside:
            self.health.event("cloud.rows_rejected", len(result.set_aside))
        self._history.append(result.remaining)
        if result.stopped is None:
            state.record_success(
                conn,
                pairing_id,
                at=at,
                accepted=result.accepted,
                duplicates=result.duplicates,
                uploaded=result.uploaded,
            )
            state.set_degraded(conn, pairing_id, self._growth_reason(result.remaining))
            # Out of time with rows left: carry on at once rather than waiting an interval.
            return Wait(0.0 if result.remaining and result.synced else interval)
        if result.uploaded:
            state.record_progress(
                conn, pairing_id, accepted=result.accepted, duplicates=result.duplicates, at=at
            )
        error = result.error or "sync failed"
        if result.stopped in (UNAUTHORISED, FORBIDDEN):
            reason = state.PAUSED_UNAUTHORISED if result.stopped == UNAUTHORISED else state.PAUSED_FORBIDDEN
            state.record_failure(conn, pairing_id, at=at, error=error, count=False)
            state.set_paused(conn, pairing_id, reason, error)
            self.health.event(f"cloud.{reason}")
            logger.warning("cloud sync paused (%s): %s", reason, error)
            return Wait(interval)
        assert result.stopped == TRANSIENT
        failures = state.record_failure(conn, pairing_id, at=at, error=error)
        self.health.event(
            "cloud.transport_error"
            if result.posts and result.posts[-1].status is None
            else "cloud.http_error"
        )
        reason = None
        if failures >= state.DEGRADED_AFTER_FAILURES:
            reason = f"{failures} sync attempts in a row failed ({error})"
        state.set_degraded(conn, pairing_id, reason or self._growth_reason(result.remaining))
        delay = retry_delay(
            failures, interval=interval, cap=settings.cloud_retry_max, retry_after=result.retry_after
        )
        logger.warning("cloud sync failed (%d in a row), next attempt in %.1fs: %s", failures, delay, error)
        # A Retry-After is the cloud asking for quiet: no probing before it is up. A cloud whose
        # /healthz said "back" but whose batch still failed gets one full backoff without probes, so a
        # broken ingest behind a healthy /healthz is not hit every probe interval.
        probe = result.retry_after is None and not self._back_on_probe
        return Wait(delay, settings.cloud_health_probe if probe else None)

    def _growth_reason(self, remaining: int) -> str | None:
        history = list(self._history)
        if (
            remaining
            and len(history) == self._history.maxlen
            and all(a < b for a, b in itertools.pairwise(history))
        ):
            return f"the backlog grew over the last {state.BACKLOG_WINDOW} passes ({history[0]} -> {remaining} rows)"
        return None
