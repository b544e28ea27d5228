"""Pairing and sync with real processes: the detached daemon, the CLI in a subprocess, the fake cloud.

Covers the spec's walk-through end to end on the meter's side: `cloud connect` (its four lines, the
files and modes it writes), the worker syncing within one supervisor tick, `cloud status`, the loopback
routes over a real socket, Ctrl-C, re-pairing, `cloud disconnect`, the placeholder heal at boot, and a
`kill -9` in the middle of a batch.
"""

from __future__ import annotations

import json
import os
import pty
import signal
import socket
import sqlite3
import tomllib
from collections.abc import Iterator

import pytest

from halton_meter.cloud.credentials import decrypt, mode_of
from halton_meter.testing.fake_cloud import FakeCloud, store_rows
from halton_meter.testing.processes import DASHBOARD, wait_for
from halton_meter.testing.processes import MeterProcess as Meter


@pytest.fixture
def cloud() -> Iterator[FakeCloud]:
    with FakeCloud() as fake:
        fake.dashboard = DASHBOARD
        yield fake


def connect(meter: Meter, cloud: FakeCloud) -> tuple[str, str]:
    """Run `cloud connect`, approve the code it shows; returns (stdout, token)."""
    process = meter.spawn("cloud", "connect", "--base-url", cloud.url, "--poll-interval-seconds", "0.05")
    process.wait_line("Waiting for approval")
    code = cloud.wait_for_code()
    token = cloud.approve(code)
    exit_code, out, err = process.finish()
    assert exit_code == 0, out + err
    return out, token


def test_connect_sync_status_loopback_reconnect_and_disconnect(server_dir, cloud):
    meter = Meter(
        server_dir,
        base_url="https://api.halton.test",
        extra_config='base_url_written_by_meter = "https://api.halton.test"\n',  # an old meter's default
    )
    not_running = meter.cli("cloud", "connect", "--base-url", cloud.url)
    assert not_running.returncode == 1
    assert "daemon not running: run halton-meter status and halton-meter start" in not_running.stderr
    with meter.running():
        # The placeholder TLD was healed at boot, the rest of config.toml kept.
        config = meter.paths.config.read_text()
        assert 'base_url = "https://api.haltonmeter.com"' in config and config.startswith(
            "# written by the test"
        )
        assert "placeholder" in meter.paths.daemon_log.read_text()

        # -- connect: the four lines, then the files and modes of the spec ----------------------
        out, token = connect(meter, cloud)
        lines = out.splitlines()
        code = cloud.pairings and next(iter(cloud.pairings))
        assert lines[:4] == [
            f"Requesting pairing code from {cloud.host}…",
            f"Pairing code: {code}",
            f"Approve at: {DASHBOARD}/connect?code={code}",
            "Waiting for approval… (Ctrl-C to cancel)",
        ]
        assert "paired with workspace acme-co" in out
        assert mode_of(meter.paths.cloud_credentials) == 0o600 and mode_of(meter.paths.cloud_key) == 0o600
        assert json.loads(meter.paths.cloud_credentials.read_text())["token"] == token
        parsed = tomllib.loads(meter.paths.config.read_text())
        assert parsed["cloud"]["enabled"] is True and parsed["cloud"]["base_url"] == cloud.url
        assert "base_url_written_by_meter" not in parsed["cloud"]  # --base-url: the user chose it
        assert parsed["cloud"]["workspace_id"] == cloud.workspace_id and parsed["proxy"]["port"] == meter.port
        with sqlite3.connect(meter.paths.db) as conn:
            ciphertext, workspace, hostname = conn.execute(
                "SELECT api_key_ciphertext, workspace_name, hostname FROM cloud_state"
            ).fetchone()
        assert decrypt(meter.paths.cloud_key.read_bytes().strip(), ciphertext) == token
        assert workspace == "Acme Co" and hostname == socket.gethostname()

        # -- the worker starts on the next tick and syncs ---------------------------------------
        uids = store_rows(meter.paths, 25)
        wait_for(lambda: cloud.unique_uids() >= set(uids), what="the daemon to sync")
        wait_for(lambda: meter.unsynced() == 0, what="rows marked synced")
        status = meter.json("cloud", "status")
        assert status["state"] == "ACTIVE" and status["unsynced_rows"] == 0 and status["daemon_running"]
        who = meter.cli("cloud", "whoami").stdout.splitlines()
        assert who[0] == "Workspace:  acme-co" and who[2] == f"Hostname:   {socket.gethostname()}"

        # -- the loopback routes over a real socket ----------------------------------------------
        ok = meter.loopback("GET", "/v1/cloud/state", headers={"Origin": DASHBOARD})
        assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == DASHBOARD
        assert ok.json()["state"] == "ACTIVE" and token not in ok.text
        assert (
            meter.loopback("GET", "/v1/cloud/state", headers={"Origin": "https://evil.example"}).status_code
            == 403
        )
        preflight = meter.loopback(
            "OPTIONS",
            "/v1/cloud/connect",
            headers={"Origin": DASHBOARD, "Access-Control-Request-Method": "POST"},
        )
        assert preflight.status_code == 204 and preflight.headers["access-control-allow-origin"] == DASHBOARD
        assert meter.loopback("POST", "/v1/cloud/connect", json={}).status_code == 403  # no Origin
        internal = meter.loopback("GET", "/v1/cloud/state", headers={"Host": "halton-meter.internal"})
        assert internal.status_code == 403
        rebound = meter.loopback("GET", "/v1/cloud/state", headers={"Host": f"attacker.invalid:{meter.port}"})
        assert rebound.status_code != 200 and "workspace" not in rebound.text

        # -- re-connecting asks first, keeps the working token until the new pairing completes ---
        asked = meter.cli("cloud", "connect", "--base-url", cloud.url)
        assert asked.returncode == 1 and "acme-co" in asked.stderr
        assert "run `halton-meter cloud connect --force`" in asked.stderr
        again = meter.spawn(
            "cloud", "connect", "--base-url", cloud.url, "--poll-interval-seconds", "0.05", "--force"
        )
        again.wait_line("Waiting for approval")
        code = cloud.wait_for_code()
        assert cloud.device_status(token) == "active"
        again.process.send_signal(signal.SIGINT)
        exit_code, _, err = again.finish()
        assert exit_code == 130 and "Traceback" not in err
        assert "Cancelled: nothing was written. This machine stays paired as before." in err
        assert f"Code {code} cancelled on {cloud.host}: it can no longer be approved." in err
        assert cloud.pairings[code].status == "cancelled"
        with pytest.raises(ValueError, match="cancelled"):
            cloud.approve(code)
        assert json.loads(meter.paths.cloud_credentials.read_text())["token"] == token
        assert cloud.device_status(token) == "active"
        assert meter.loopback("GET", "/v1/cloud/state").json()["state"] == "ACTIVE"

        # A run-out --timeout-seconds cancels its code the same way.
        timed = meter.spawn(
            "cloud", "connect", "--base-url", cloud.url, "--force", "--timeout-seconds", "0.3"
        )
        exit_code, _, err = timed.finish(timeout=30)
        assert exit_code == 1 and "Gave up waiting for approval after 0.3s" in err
        assert "cancelled on" in err and "it can no longer be approved" in err
        assert not cloud.pending_codes()
        assert json.loads(meter.paths.cloud_credentials.read_text())["token"] == token

        # Approved, the new pairing replaces the old one and only then revokes its token.
        replaced = meter.spawn(
            "cloud", "connect", "--base-url", cloud.url, "--poll-interval-seconds", "0.05", "--force"
        )
        replaced.wait_line("Waiting for approval")
        new_token = cloud.approve(cloud.wait_for_code())
        exit_code, out, err = replaced.finish()
        assert exit_code == 0, out + err
        assert f"Previous token revoked at {cloud.host}." in out
        assert cloud.device_status(token) == "revoked" and cloud.device_status(new_token) == "active"
        assert json.loads(meter.paths.cloud_credentials.read_text())["token"] == new_token
        off = meter.cli("cloud", "disconnect")
        assert off.returncode == 0, off.stderr
        assert meter.loopback("GET", "/v1/cloud/state").json()["state"] == "NOT-CONFIGURED"

        # -- the dashboard pairs through the daemon ----------------------------------------------
        started = meter.loopback(
            "POST", "/v1/cloud/connect", json={"base_url": cloud.url}, headers={"Origin": DASHBOARD}
        )
        assert started.status_code == 202 and started.headers["access-control-allow-origin"] == DASHBOARD
        dashboard_token = cloud.approve(started.json()["code"])
        wait_for(lambda: meter.paths.cloud_credentials.exists(), what="the daemon to write the credentials")
        wait_for(
            lambda: meter.json("cloud", "status")["state"] == "ACTIVE", what="ACTIVE after dashboard pairing"
        )
        assert json.loads(meter.paths.cloud_credentials.read_text())["token"] == dashboard_token

        # -- disconnect: revoke, wipe, enabled = false; capture goes on ---------------------------
        gone = meter.cli("cloud", "disconnect")
        assert gone.returncode == 0, gone.stderr
        assert gone.stdout.splitlines()[:3] == [
            f"Revoking token at {cloud.host}…",
            "Token revoked.",
            "Local: cloud.enabled = false; credentials wiped.",
        ]
        assert not meter.paths.cloud_credentials.exists() and not meter.paths.cloud_key.exists()
        assert tomllib.loads(meter.paths.config.read_text())["cloud"]["enabled"] is False
        assert cloud.device_status(dashboard_token) == "revoked"
        with sqlite3.connect(meter.paths.db) as conn:
            assert conn.execute("SELECT COUNT(*) FROM cloud_state").fetchone()[0] == 0
        wait_for(
            lambda: "cloud sync off: worker stopped" in meter.paths.daemon_log.read_text(), what="worker stop"
        )
        assert meter.loopback("GET", "/v1/health").status_code == 200  # capture carries on locally


def test_re_connecting_at_a_terminal_asks_first(server_dir, cloud):
    meter = Meter(server_dir, base_url=cloud.url)
    token = cloud.pair(meter.paths)
    with meter.running():
        for answer, exit_expected in ((b"n\n", 1), (b"y\n", 0)):
            person, terminal = pty.openpty()
            try:
                process = meter.spawn(
                    "cloud",
                    "connect",
                    "--base-url",
                    cloud.url,
                    "--poll-interval-seconds",
                    "0.05",
                    stdin=terminal,
                )
                os.write(person, answer)
                if exit_expected == 0:
                    process.wait_line("Waiting for approval")
                    new_token = cloud.approve(cloud.wait_for_code())
                exit_code, out, err = process.finish()
            finally:
                os.close(person)
                os.close(terminal)
            assert exit_code == exit_expected, out + err
            if answer == b"n\n":
                assert "Pair it again?" in out and "nothing changed" in err
                assert cloud.pending_codes() == [] and len(cloud.pairings) == 1  # no code asked for
                assert cloud.device_status(token) == "active"
        assert json.loads(meter.paths.cloud_credentials.read_text())["token"] == new_token
        assert cloud.device_status(token) == "revoked"


def test_kill_9_mid_batch_loses_nothing_and_counts_each_row_once(server_dir, cloud):
    meter = Meter(server_dir, base_url=cloud.url)
    cloud.pair(meter.paths)
    uids = store_rows(meter.paths, 300)
    with open(meter.paths.config, "a") as config:
        config.write("batch_rows = 100\n")
    cloud.batch_delay = 0.5
    with meter.running():
        assert cloud.batch_started.wait(10), "the daemon never sent a batch"
        os.kill(meter.pid(), signal.SIGKILL)  # the cloud stores this batch, the meter never hears back
        wait_for(lambda: len(cloud.unique_uids()) == 100, what="the in-flight batch to land")
    assert meter.unsynced() == 300  # nothing was marked: no 2xx reached the meter
    cloud.batch_delay = 0.0
    with meter.running():
        wait_for(lambda: meter.unsynced() == 0, what="the backlog to drain after restart")
    assert cloud.unique_uids() == set(uids)
    assert cloud.accepted_total == 300  # each request_uid counted once after dedupe
    assert sum(cloud.received.values()) == 400 and max(cloud.received.values()) == 2  # 100 sent twice


def test_a_killed_daemon_is_not_running_with_its_backlog_until_restarted(server_dir, cloud):
    meter = Meter(server_dir, base_url=cloud.url)
    cloud.pair(meter.paths)
    with meter.running():
        wait_for(lambda: meter.json("cloud", "status")["state"] == "ACTIVE", what="ACTIVE")
        # The supervisor's tick is the heartbeat: daemon.json is touched after it was written.
        written = json.loads(meter.paths.daemon_state.read_text())["started_at"]
        running = meter.json("status")["daemon"]
        assert running["state"] == "running" and running["started_at"] == written
        cloud.go_down()
        store_rows(meter.paths, 3000)
        wait_for(lambda: meter.json("cloud", "status")["state"] == "DEGRADED", what="DEGRADED")
        pid = meter.pid()
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: meter.json("status")["daemon"]["state"] == "stopped", what="the lock to be released")

        document = meter.json("cloud", "status")
        assert document["state"] == "NOT-RUNNING" and document["daemon_running"] is False
        assert document["unsynced_rows"] == 3000
        assert document["daemon"]["state"] == "stopped" and document["daemon"]["started_at"] == written
        last_seen = document["daemon"]["last_seen_at"]
        assert last_seen is not None and last_seen >= written  # its last heartbeat, not its start
        assert document["degraded_reason"]  # what the worker last saw is still told

        overall = meter.json("status")
        assert overall["daemon"]["state"] == "stopped" and overall["daemon"]["last_seen_at"] == last_seen
        assert overall["cloud"]["state"] == "NOT-RUNNING" and overall["cloud"]["unsynced_rows"] == 3000
        assert overall["cloud"]["daemon_running"] is False

        text = meter.cli("cloud", "status").stdout.splitlines()
        assert text[0] == "State:           NOT-RUNNING" and "Unsynced rows:   3000" in text
        daemon_line = next(line for line in text if line.startswith("Daemon:"))
        assert "stopped (last seen" in daemon_line and "halton-meter start" in daemon_line
        assert "NOT-RUNNING" in meter.cli("status").stdout

    cloud.come_up()
    with meter.running():
        wait_for(lambda: meter.unsynced() == 0, timeout=30, what="the backlog to drain after restart")
        wait_for(lambda: meter.json("cloud", "status")["state"] == "ACTIVE", what="ACTIVE again")
    stopped = meter.json("status")["daemon"]
    assert stopped["state"] == "stopped" and stopped["last_seen_at"] is not None  # the clean stop's time
    assert meter.json("cloud", "status")["state"] == "NOT-RUNNING"


def test_a_restart_keeps_the_url_the_user_chose_and_heals_only_what_the_meter_wrote(server_dir, cloud):
    chosen = "http://cloudbox.local:18400"
    meter = Meter(server_dir, base_url=cloud.url)
    cloud.pair(meter.paths)  # as `cloud connect --base-url`: no base_url_written_by_meter
    config = meter.paths.config.read_text().replace(f'base_url = "{cloud.url}"', f'base_url = "{chosen}"')
    meter.paths.config.write_text(config)
    with meter.running():
        wait_for(lambda: "kept as it is" in meter.paths.daemon_log.read_text(), what="the kept URL logged")
        assert meter.json("cloud", "status")["base_url"] == chosen
    with meter.running():  # and again: a second boot changes nothing either
        wait_for(lambda: meter.json("cloud", "status")["daemon_running"], what="the daemon to answer")
    assert meter.paths.config.read_text() == config
    assert tomllib.loads(config)["cloud"]["base_url"] == chosen
    assert "healed" not in meter.paths.daemon_log.read_text()

    # The same host written by the meter itself (its default once was a placeholder) is healed, logged.
    meter.paths.config.write_text(
        config.replace("[cloud]\n", f'[cloud]\nbase_url_written_by_meter = "{chosen}"\n')
    )
    with meter.running():
        wait_for(lambda: "healed from" in meter.paths.daemon_log.read_text(), what="the heal logged")
    line = next(x for x in meter.paths.daemon_log.read_text().splitlines() if "healed from" in x)
    assert f"healed from '{chosen}' to 'https://api.haltonmeter.com'" in line
    healed = tomllib.loads(meter.paths.config.read_text())["cloud"]
    assert healed["base_url"] == "https://api.haltonmeter.com" and healed["enabled"] is True


def test_rows_flow_once_the_cloud_comes_back_after_an_outage_longer_than_the_cap(server_dir, cloud):
    # Small timings through config.toml: retries capped at 1 s, /healthz asked every 0.2 s.
    meter = Meter(
        server_dir, base_url=cloud.url, extra_config="retry_max_seconds = 1.0\nhealth_probe_seconds = 0.2\n"
    )
    cloud.pair(meter.paths)

    def failures() -> int:
        with sqlite3.connect(meter.paths.db) as conn:
            return conn.execute("SELECT consecutive_failures FROM cloud_state").fetchone()[0]

    with meter.running():
        wait_for(lambda: meter.json("cloud", "status")["state"] == "ACTIVE", what="ACTIVE")
        cloud.go_down()
        uids = store_rows(meter.paths, 733)
        # Ten failures in a row: the backoff (0.1, 0.2, 0.4, 0.8 s, then 1 s) has sat at its cap for a while.
        wait_for(lambda: failures() >= 10, timeout=60, what="an outage longer than the retry cap")
        uids += store_rows(meter.paths, 10)
        assert meter.json("cloud", "status")["state"] == "DEGRADED"
        cloud.come_up()
        wait_for(lambda: meter.unsynced() == 0, timeout=120, what="every row after the return")
        wait_for(lambda: meter.json("cloud", "status")["state"] == "ACTIVE", what="ACTIVE again")
    assert cloud.unique_uids() >= set(uids)


def test_connect_records_the_clouds_dashboard_and_every_link_names_it(server_dir, cloud):
    """A self-hosted cloud, no dashboard_origin configured: pairing records the dashboard the cloud's
    answer names, its page may then call the meter, and a removed machine's help links to it."""
    meter = Meter(server_dir, base_url="https://api.haltonmeter.com", dashboard=None)
    with meter.running():
        hosted = meter.loopback("GET", "/v1/cloud/state", headers={"Origin": DASHBOARD})
        assert hosted.status_code == 403  # before pairing: only the hosted dashboard (the hosted cloud's)
        _, token = connect(meter, cloud)
        parsed = tomllib.loads(meter.paths.config.read_text())["cloud"]
        assert parsed["dashboard_origin"] == parsed["dashboard_origin_written_by_meter"] == DASHBOARD
        allowed = meter.loopback("GET", "/v1/cloud/state", headers={"Origin": DASHBOARD})
        assert allowed.status_code == 200 and allowed.headers["access-control-allow-origin"] == DASHBOARD

        cloud.remove(token)
        store_rows(meter.paths, 1)
        wait_for(
            lambda: meter.json("cloud", "status")["paused_reason"] == "paused_forbidden",
            what="the 403 pause",
        )
        resumed = meter.cli("cloud", "resume")
        again = meter.cli("cloud", "connect", "--base-url", cloud.url)
    for result in (resumed, again):
        text = " ".join((result.stdout + result.stderr).split())
        assert result.returncode == 1 and f"{DASHBOARD}/acme-co/settings/devices" in text, text
        assert "haltonmeter.com" not in text


def test_a_dashboard_origin_the_user_wrote_survives_pairing(server_dir, cloud):
    mine = "http://127.0.0.1:4999"
    meter = Meter(server_dir, base_url=cloud.url, dashboard=mine)
    with meter.running():
        connect(meter, cloud)
        parsed = tomllib.loads(meter.paths.config.read_text())["cloud"]
        assert parsed["dashboard_origin"] == mine and "dashboard_origin_written_by_meter" not in parsed
