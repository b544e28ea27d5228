"""The sync worker and the supervisor against the fake cloud, and the CLI commands that steer them.

The worker runs in this process (its own thread, as in the daemon) with a 50 ms sync interval; the
CLI runs through click's runner against the same home.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterator
from decimal import Decimal

import pytest
from click.testing import CliRunner

from halton_meter import spend_limits
from halton_meter.cli import main
from halton_meter.cloud import state
from halton_meter.cloud.config_table import set_cloud_keys
from halton_meter.cloud.link import wipe_local
from halton_meter.cloud.supervisor import CloudSupervisor
from halton_meter.cloud.worker import SyncWorker, retry_delay
from halton_meter.health import Health
from halton_meter.paths import MeterPaths
from halton_meter.pidfile import PidLock
from halton_meter.settings import load_settings
from halton_meter.store import open_store
from halton_meter.testing.fake_cloud import FakeCloud, store_rows
from halton_meter.testing.processes import wait_for

run = CliRunner().invoke


@pytest.fixture
def cloud() -> Iterator[FakeCloud]:
    with FakeCloud() as fake:
        yield fake


@pytest.fixture
def paired(home: MeterPaths, cloud: FakeCloud) -> str:
    token = cloud.pair(home)
    set_cloud_keys(home.config, {"sync_interval_seconds": 0.05})
    return token


@pytest.fixture
def worker(home: MeterPaths, paired: str) -> Iterator[SyncWorker]:
    """The worker in this process, which holds the daemon lock as the daemon that hosts it would."""
    settings = load_settings(home.home)
    with PidLock(home.pidfile):
        running = SyncWorker(home, Health(), lambda: settings).start()
        yield running
        running.stop()


def status(home: MeterPaths) -> state.CloudStatus:
    return state.load_status(load_settings(home.home))


def test_rows_sync_and_status_is_active(home, cloud, worker):
    uids = store_rows(home, 20)
    wait_for(lambda: status(home).unsynced_rows == 0 and status(home).last_sync_at is not None, what="sync")
    assert cloud.unique_uids() == set(uids)
    result = run(main, ["cloud", "status"])
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0] == "State:           ACTIVE"
    assert lines[1].startswith("Last sync:       ") and lines[1].endswith("s ago")
    assert lines[2] == "Unsynced rows:   0"
    assert lines[3] == "Last reconcile:  never"
    document = json.loads(run(main, ["cloud", "status", "--json"]).output)
    assert (
        document["state"] == "ACTIVE" and document["unsynced_rows"] == 0 and document["paused_reason"] is None
    )
    assert document["workspace"]["slug"] == "acme-co" and document["rows_accepted"] == 20
    assert "hm_sync_" not in json.dumps(document)  # no secrets in the status document
    assert json.loads(run(main, ["status", "--json"]).output)["cloud"]["state"] == "ACTIVE"


def test_a_401_pauses_and_resume_says_the_token_is_revoked(home, cloud, worker, paired):
    cloud.revoke(paired)
    store_rows(home, 3)
    wait_for(lambda: status(home).state == state.PAUSED, what="PAUSED")
    assert status(home).paused_reason == "paused_unauthorised" and status(home).unsynced_rows == 3
    text = run(main, ["cloud", "status"]).output
    assert "State:           PAUSED" in text and "paused_unauthorised" in text and "cloud resume" in text
    resumed = run(main, ["cloud", "resume"])
    assert resumed.exit_code == 1
    assert "token is revoked" in resumed.output and "halton-meter cloud connect" in resumed.output
    assert status(home).paused_reason == "paused_unauthorised"


def test_a_transient_401_is_cleared_by_resume(home, cloud, worker):
    cloud.fail_next(1, status=401, retry_after=None)
    store_rows(home, 4)
    wait_for(lambda: status(home).paused_reason == "paused_unauthorised", what="the 401 pause")
    resumed = run(main, ["cloud", "resume"])
    assert resumed.exit_code == 0, resumed.output
    assert "Token OK: workspace acme-co" in resumed.output
    assert "Cloud sync resumed (was paused_unauthorised)." in resumed.output
    wait_for(lambda: status(home).unsynced_rows == 0, what="the backlog to drain")
    assert status(home).state == state.ACTIVE


def test_a_403_pauses_and_resume_says_not_to_reconnect(home, cloud, worker, paired):
    cloud.remove(paired)
    store_rows(home, 2)
    wait_for(lambda: status(home).paused_reason == "paused_forbidden", what="the 403 pause")
    resumed = run(main, ["cloud", "resume"])
    assert resumed.exit_code == 1
    text = " ".join(resumed.output.split())
    assert "Do not run `halton-meter cloud connect`" in text and "re-invite this machine" in text
    assert "/acme-co/settings/devices" in text
    cloud.reinstate(paired)
    assert run(main, ["cloud", "resume"]).exit_code == 0
    wait_for(lambda: status(home).unsynced_rows == 0, what="the backlog to drain")


def test_manual_pause_and_resume(home, cloud, paired):
    set_cloud_keys(home.config, {"heartbeat_seconds": 0.05})
    settings = load_settings(home.home)
    with PidLock(home.pidfile):
        worker = SyncWorker(home, Health(), lambda: settings).start()
        try:
            paused = run(main, ["cloud", "pause"])
            assert paused.exit_code == 0 and "paused (paused_manual)" in paused.output
            store_rows(home, 5)
            # Each loop reports after its step: the second report from now follows a whole step that began
            # with the rows stored, so a paused worker that sent them would be caught here, however slow.
            seen = worker.reports
            wait_for(lambda: worker.reports >= seen + 2, what="two heartbeats while paused")
            assert status(home).unsynced_rows == 5 and cloud.batches == []
            assert status(home).state == state.PAUSED and status(home).paused_reason == "paused_manual"
            resumed = run(main, ["cloud", "resume", "--json"])
            assert resumed.exit_code == 0 and json.loads(resumed.output)["paused_reason"] is None
            wait_for(lambda: status(home).unsynced_rows == 0, what="the backlog to drain")
        finally:
            worker.stop()


def test_retry_after_is_honoured(home, cloud, worker):
    cloud.fail_next(1, status=503, retry_after=1.0)
    store_rows(home, 3)
    wait_for(lambda: status(home).unsynced_rows == 0, what="the retry")
    statuses, times = cloud.statuses(), cloud.times()
    assert statuses[:2] == [503, 200]
    assert times[1] - times[0] >= 0.95  # not before Retry-After, although the interval is 50 ms


def test_a_dead_cloud_degrades_then_drains(home, cloud, worker):
    cloud.go_down()
    store_rows(home, 10)
    wait_for(lambda: status(home).state == state.DEGRADED, what="DEGRADED")
    degraded = status(home)
    assert degraded.paused_reason is None and "cannot reach" in (degraded.last_error or "")
    store_rows(home, 10)  # rows keep arriving while the cloud is away
    assert status(home).unsynced_rows == 20 and status(home).state == state.DEGRADED
    text = run(main, ["cloud", "status"]).output
    assert "State:           DEGRADED" in text and "Last error:" in text
    cloud.come_up()
    wait_for(lambda: status(home).unsynced_rows == 0, timeout=15, what="the backlog to drain")
    # Rows are marked synced batch by batch and the pass's success (which clears the error) is recorded after
    # its last batch: between the two the state is already ACTIVE with the old error still shown.
    wait_for(
        lambda: status(home).state == state.ACTIVE and status(home).last_error is None,
        what="ACTIVE, the error cleared",
    )
    assert len(cloud.unique_uids()) == 20


def test_a_manual_sync_clears_degraded(home, cloud, paired):
    settings = load_settings(home.home)
    with PidLock(home.pidfile):  # this process stands in for the daemon that hosts the worker
        worker = SyncWorker(home, Health(), lambda: settings).start()
        cloud.go_down()
        store_rows(home, 10)
        wait_for(lambda: status(home).state == state.DEGRADED, what="DEGRADED")
        worker.stop()  # the daemon's worker is between retries; the user does not wait for it
        cloud.come_up()
        synced = run(main, ["cloud", "sync"])
        assert synced.exit_code == 0, synced.output
        assert "(10 rows accepted)" in synced.output
        store_rows(home, 1)  # calls keep arriving after the manual sync
        after = json.loads(run(main, ["cloud", "status", "--json"]).output)
        assert after["state"] == "ACTIVE" and after["degraded_reason"] is None and after["last_error"] is None
        assert after["unsynced_rows"] == 1


def test_rejected_rows_are_listed(home, cloud, worker):
    uids = store_rows(home, 6)
    cloud.reject_uids[uids[2]] = "project: not a slug"
    wait_for(lambda: status(home).rejected_rows == 1 and status(home).unsynced_rows == 0, what="set-aside")
    text = run(main, ["cloud", "status"]).output
    assert "Rejected rows:   1 set aside" in text and "not a slug" in text
    document = json.loads(run(main, ["cloud", "status", "--json"]).output)
    assert document["rejected"][0]["request_uid"] == uids[2] and document["state"] == "ACTIVE"


def test_cloud_sync_from_the_cli(home, cloud, paired):
    store_rows(home, 1247)
    result = run(main, ["cloud", "sync"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == ["POST /v1/requests/batch  →  200 OK  (1247 rows accepted)"]
    assert run(main, ["cloud", "sync"]).output.strip() == "Nothing to sync: 0 unsynced rows."
    store_rows(home, 2)
    cloud.go_down()
    down = run(main, ["cloud", "sync"])
    assert down.exit_code == 1 and "no answer" in down.output and "Could not sync" in down.output
    cloud.come_up()
    cloud.revoke(paired)
    revoked = run(main, ["cloud", "sync"])
    assert revoked.exit_code == 1 and "→  401 Unauthorized" in revoked.output
    assert "paused_unauthorised" in revoked.output and status(home).paused_reason == "paused_unauthorised"
    again = run(main, ["cloud", "sync"])
    assert again.exit_code == 1 and "run `halton-meter cloud resume` first" in again.output


def test_whoami_and_disconnect(home, cloud, paired):
    who = run(main, ["cloud", "whoami"])
    assert who.exit_code == 0
    assert who.output.splitlines() == [
        "Workspace:  acme-co",
        f"Machine id: {status(home).machine_id}",
        "Hostname:   test-host",
    ]
    assert json.loads(run(main, ["cloud", "whoami", "--json"]).output)["workspace_slug"] == "acme-co"
    result = run(main, ["cloud", "disconnect"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[:3] == [
        f"Revoking token at {cloud.host}…",
        "Token revoked.",
        "Local: cloud.enabled = false; credentials wiped.",
    ]
    assert not home.cloud_credentials.exists() and not home.cloud_key.exists()
    assert load_settings(home.home).cloud_enabled is False
    assert status(home).state == state.NOT_CONFIGURED and status(home).workspace_id is None
    assert cloud.device_status(paired) == "revoked"
    not_paired = run(main, ["cloud", "whoami"])
    assert not_paired.exit_code == 1 and "cloud connect" in not_paired.output


def test_disconnect_while_the_cloud_is_down_still_wipes(home, cloud, paired):
    cloud.go_down()
    result = run(main, ["cloud", "disconnect"])
    assert result.exit_code == 1
    text = " ".join(result.output.split())
    assert "Could not revoke the token" in text and "Local: cloud.enabled = false; credentials wiped." in text
    assert "token stays valid until you revoke this machine" in text and "/acme-co/settings/devices" in text
    assert not home.cloud_credentials.exists() and not home.cloud_key.exists()
    assert load_settings(home.home).cloud_enabled is False


def test_the_retry_schedule_backs_off_to_a_30_second_cap_and_follows_retry_after():
    rng = random.Random(18)
    low = [retry_delay(n, interval=5.0, cap=30.0, rng=FixedRng(0.0)) for n in range(1, 8)]
    high = [retry_delay(n, interval=5.0, cap=30.0, rng=FixedRng(1.0)) for n in range(1, 8)]
    assert low == [2.5, 5.0, 10.0, 15.0, 15.0, 15.0, 15.0]  # half of each ceiling is fixed...
    assert high == [5.0, 10.0, 20.0, 30.0, 30.0, 30.0, 30.0]  # ...and the ceiling stops at the cap
    assert max(retry_delay(n, interval=5.0, cap=30.0, rng=rng) for n in range(1, 10_000, 97)) <= 30.0
    assert len({retry_delay(3, interval=5.0, cap=30.0, rng=rng) for _ in range(20)}) > 1  # jittered
    # The cloud's Retry-After wins over the backoff (longer or shorter), within a bound for bogus ones.
    assert retry_delay(1, interval=5.0, cap=30.0, retry_after=120.0) == 120.0
    assert retry_delay(9, interval=5.0, cap=30.0, retry_after=0.5) == 0.5
    assert retry_delay(1, interval=5.0, cap=30.0, retry_after=86_400.0) == 300.0


class FixedRng(random.Random):
    """Jitter pinned to one end of its range."""

    def __init__(self, fraction: float) -> None:
        super().__init__()
        self.fraction = fraction

    def uniform(self, a: float, b: float) -> float:
        return a + (b - a) * self.fraction


def test_the_health_probe_brings_sync_back_long_before_the_retry_is_due(home, cloud, paired):
    # A retry due 100-200 s after the failure (a 200-s interval, a 300-s cap): only /healthz can bring
    # the rows over within the minute this test waits, and the log shows it did (no stopwatch needed).
    set_cloud_keys(
        home.config, {"sync_interval_seconds": 200.0, "retry_max_seconds": 300.0, "health_probe_seconds": 0.1}
    )
    settings = load_settings(home.home)
    cloud.go_down()
    uids = store_rows(home, 30)
    worker = SyncWorker(home, Health(), lambda: settings).start()
    try:
        wait_for(lambda: status(home).last_error is not None, what="the first attempt to fail")
        cloud.come_up()
        wait_for(lambda: status(home).unsynced_rows == 0, timeout=60, what="rows before the 100 s retry")
    finally:
        worker.stop()
    assert cloud.unique_uids() == set(uids)
    calls = [(method, path, code) for _, method, path, code in cloud.log]
    first_batch = calls.index(("POST", "/v1/requests/batch", 200))
    assert ("GET", "/healthz", 200) in calls[:first_batch]


def test_the_supervisor_starts_and_stops_the_worker(home, cloud):
    placeholder = "https://api.halton.test"
    set_cloud_keys(
        home.config,
        {"sync_interval_seconds": 0.05, "base_url": placeholder, "base_url_written_by_meter": placeholder},
    )
    supervisor = CloudSupervisor(load_settings(home.home), Health(), "unused", tick=0.05)
    supervisor.start()
    try:
        assert load_settings(home.home).cloud_base_url == "https://api.haltonmeter.com"  # healed at boot
        # Each tick begins by touching daemon.json: two touches from now bracket a whole tick.
        home.daemon_state.write_text("{}")
        for _ in range(2):
            os.utime(home.daemon_state, ns=(0, 0))
            wait_for(lambda: home.daemon_state.stat().st_mtime_ns > 0, what="a supervisor tick")
        assert supervisor.worker is None  # not paired: nothing runs
        cloud.pair(home)
        uids = store_rows(home, 5)
        wait_for(lambda: supervisor.worker is not None, timeout=60, what="the worker to start")
        wait_for(lambda: cloud.unique_uids() == set(uids), what="rows to sync")
        wipe_local(home)
        wait_for(lambda: supervisor.worker is None, timeout=60, what="the worker to stop")
    finally:
        supervisor.stop()


def test_the_worker_reports_its_state_after_passes_and_heartbeats_while_idle(home, cloud, paired):
    set_cloud_keys(home.config, {"heartbeat_seconds": 0.1, "retry_max_seconds": 0.2})
    settings = load_settings(home.home)

    def report() -> dict | None:
        return next(iter(cloud.reports.values()), None)

    with PidLock(home.pidfile):
        worker = SyncWorker(home, Health(), lambda: settings).start()
        try:
            wait_for(lambda: (report() or {}).get("state") == "ACTIVE", what="the first report")
            assert report()["unsynced_rows"] == 0 and report()["meter_version"]
            # Idle: nothing changes, and heartbeats keep coming.
            wait_for(lambda: worker.reports >= 4, what="heartbeats while idle")

            # Batches fail while reports get through: the meter says DEGRADED, with its backlog.
            cloud.fail_next(6, status=503, retry_after=None)
            store_rows(home, 7)
            wait_for(lambda: (report() or {}).get("state") == "DEGRADED", what="DEGRADED reported")
            assert report()["unsynced_rows"] == 7 and report()["paused_reason"] is None
            wait_for(lambda: report() == {**report(), "state": "ACTIVE", "unsynced_rows": 0}, what="drained")

            assert run(main, ["cloud", "pause"]).exit_code == 0
            store_rows(home, 2)
            wait_for(
                lambda: (
                    (report() or {}).get("paused_reason") == "paused_manual"
                    and report()["unsynced_rows"] == 2
                ),
                what="the manual pause reported with its waiting rows",
            )
            assert report()["state"] == "PAUSED"
            assert run(main, ["cloud", "resume"]).exit_code == 0
            wait_for(lambda: report()["state"] == "ACTIVE" and report()["unsynced_rows"] == 0, what="resumed")
        finally:
            worker.stop()


def test_a_new_catalogue_in_the_cloud_is_installed_after_a_sync_and_prices_unpriced_rows(home, cloud, worker):
    from decimal import Decimal

    from halton_meter.catalogue import active_catalogue, load_catalogue
    from halton_meter.reprice import price_history
    from halton_meter.store import connect
    from halton_meter.testing.catalogues import edited_catalogue

    (uid,) = store_rows(
        home, 1, model_requested="gpt-mystery-9", model_served="gpt-mystery-9", cost_usd=None, price_card=None
    )
    wait_for(lambda: uid in cloud.stored, what="the unpriced row synced")
    assert cloud.stored[uid]["cost_usd"] is None
    # It asks after its passes; the packaged catalogue is in force there too: 304, nothing installed.
    wait_for(lambda: 304 in cloud.statuses("/v1/rates"), what="asked for the rates")
    assert active_catalogue(home.catalogue).version == load_catalogue().version

    new = "2027-01-05+0123456789ab"
    cloud.catalogue = edited_catalogue(new, new_models=[("openai", "gpt-mystery-9", "1", "2")])
    store_rows(home, 1)  # the next sync that uploads asks again (an idle meter: once per heartbeat)
    wait_for(lambda: active_catalogue(home.catalogue).version == new, what="install")
    # 100 x $1 + 20 x $2 per million: the row is priced, its first state stays in its history, and the
    # cloud gets the corrected copy.
    wait_for(
        lambda: (
            cloud.stored[uid]["cost_usd"] is not None
            and Decimal(cloud.stored[uid]["cost_usd"]) == Decimal("0.00014")
        ),
        what="the corrected row",
    )
    conn = connect(home.db, readonly=True)
    (first,) = price_history(conn, uid)
    assert first["cost_nusd"] is None and first["synced_at"] is not None


def test_a_failing_rates_route_only_delays_the_catalogue(home, cloud, worker):
    cloud.fail_next(path="/v1/rates")
    uids = store_rows(home, 3)
    wait_for(lambda: status(home).unsynced_rows == 0, what="sync")
    assert cloud.unique_uids() == set(uids)
    wait_for(lambda: cloud.statuses("/v1/rates"), what="asked")
    uids += store_rows(home, 2)
    # The failure delayed nothing: the next rows go up, and the catalogue is asked for again (after that
    # upload or on an idle heartbeat, whichever comes first: the wait covers both orders).
    wait_for(lambda: cloud.unique_uids() == set(uids), what="the next rows synced")
    wait_for(lambda: 304 in cloud.statuses("/v1/rates"), what="asked again")
    assert cloud.statuses("/v1/rates")[0] == 503


def test_the_worker_fetches_hard_limits_sends_blocks_and_keeps_the_figure_through_an_outage(
    home, cloud, paired
):
    cloud.spend_limits = [
        {"project": "shop", "budget_usd": "10.00", "month": spend_limits.month_of(state.now_utc()),
         "month_to_date_usd": "9.25", "spend_as_of": "2026-12-07T11:00:00+00:00", "problem": None}
    ]  # fmt: skip
    set_cloud_keys(home.config, {"sync_interval_seconds": 0.05})
    with home.config.open("a") as config:
        config.write("\n[limits]\nrefresh_seconds = 0.05\n")
    settings = load_settings(home.home)
    conn = open_store(home.db)
    event = spend_limits.LimitEvent(
        kind="blocked", via=None, project="shop", provider="openai", model="gpt-4o", at=state.now_utc(),
        budget_usd=Decimal("10"), spend_usd=Decimal("10.5"),
    )  # fmt: skip
    uid = spend_limits.record_event(conn, event)
    with PidLock(home.pidfile):
        running = SyncWorker(home, Health(), lambda: settings).start()
        try:
            wait_for(lambda: "shop" in spend_limits.load(conn).limits, what="the limits fetched")
            assert spend_limits.load(conn).limits["shop"].month_to_date_usd == Decimal("9.25")
            wait_for(lambda: not spend_limits.unsynced_events(conn, limit=10), what="the block sent")
            assert (
                cloud.limit_events[uid]["kind"] == "blocked" and cloud.limit_events[uid]["model"] == "gpt-4o"
            )
            cloud.go_down()
            wait_for(lambda: spend_limits.load(conn).last_error is not None, what="the failed fetch recorded")
            kept = spend_limits.load(conn)
            assert (
                "shop" in kept.limits and kept.last_error_at > kept.fetched_at
            )  # the figure stays, and ages
        finally:
            running.stop()
            cloud.come_up()
