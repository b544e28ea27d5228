"""Pairing against the fake cloud: the code, the long-poll, approval, denial, expiry; what approval writes."""

from __future__ import annotations

import json
import sqlite3
import threading
import tomllib
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from halton_meter.cli import main
from halton_meter.cloud import link, pairing
from halton_meter.cloud.client import CloudClient
from halton_meter.cloud.credentials import decrypt, load_credentials, mode_of
from halton_meter.home import load_machine_id
from halton_meter.paths import MeterPaths
from halton_meter.testing.fake_cloud import FakeCloud


@pytest.fixture
def cloud() -> Iterator[FakeCloud]:
    with FakeCloud() as fake:
        yield fake


def start(cloud: FakeCloud, home: MeterPaths) -> tuple[CloudClient, pairing.PairingTicket]:
    client = CloudClient(cloud.url)
    ticket = pairing.request_code(client, machine_id=load_machine_id(home), hostname="laptop")
    return client, ticket


def when(ready, action) -> threading.Thread:
    """Run `action` in the background once `ready()` returns: on an event the test can name, never after a
    sleep that a loaded machine may outlast."""
    thread = threading.Thread(target=lambda: (ready(), action()), daemon=True)
    thread.start()
    return thread


def test_approval_arrives_on_the_long_poll_and_writes_every_file(home, cloud):
    client, ticket = start(cloud, home)
    assert len(ticket.code) == 9 and ticket.code[4] == "-" and ticket.approve_url.endswith(ticket.code)
    when(cloud.wait_for_held_poll, lambda: cloud.approve(ticket.code))
    # A 5 s poll interval: the approval comes back on the first poll, held open until it arrived.
    approval = pairing.wait_for_approval(client, ticket, poll_interval=5.0, timeout=60)
    assert cloud.statuses("/v1/pairing/poll") == [200]
    assert approval.token.startswith("hm_sync_") and approval.workspace_slug == "acme-co"

    machine_id = load_machine_id(home)
    link.complete_pairing(
        home, base_url=cloud.url, approval=approval, machine_id=machine_id, hostname="laptop"
    )
    assert mode_of(home.cloud_credentials) == 0o600 and mode_of(home.cloud_key) == 0o600
    saved = json.loads(home.cloud_credentials.read_text())
    assert saved["token"] == approval.token and saved["machine_id"] == machine_id
    assert tomllib.loads(home.config.read_text())["cloud"] == {
        "enabled": True,
        "base_url": cloud.url,
        "workspace_id": cloud.workspace_id,
    }
    conn = sqlite3.connect(home.db)
    conn.row_factory = sqlite3.Row
    row = conn.execute("SELECT * FROM cloud_state").fetchone()
    assert row["workspace_name"] == "Acme Co" and row["workspace_slug"] == "acme-co"
    assert row["machine_id"] == machine_id and row["hostname"] == "laptop"
    assert approval.token not in row["api_key_ciphertext"]
    assert decrypt(home.cloud_key.read_bytes().strip(), row["api_key_ciphertext"]) == approval.token

    # The token was handed out once: polling again says the code is used up.
    with pytest.raises(pairing.PairingFailed) as again:
        pairing.wait_for_approval(client, ticket, poll_interval=0.01, timeout=2)
    assert again.value.kind == "consumed"


def test_re_pairing_keeps_the_machine_id(home, cloud):
    first = cloud.pair(home)
    machine_id = load_machine_id(home)
    second = cloud.pair(home)
    assert first != second and load_machine_id(home) == machine_id
    assert load_credentials(home).machine_id == machine_id
    assert {d.machine_id for d in cloud.devices.values()} == {machine_id}


def test_denied(home, cloud):
    client, ticket = start(cloud, home)
    when(cloud.wait_for_held_poll, lambda: cloud.deny(ticket.code))
    with pytest.raises(pairing.PairingFailed, match="denied in the browser; nothing was written") as failed:
        pairing.wait_for_approval(client, ticket, poll_interval=0.05, timeout=60)
    assert failed.value.kind == "denied"


def test_expired_on_the_server(home, cloud):
    client, ticket = start(cloud, home)
    when(cloud.wait_for_held_poll, lambda: cloud.expire(ticket.code))
    with pytest.raises(pairing.PairingFailed, match=r"expired \(codes last 10 minutes\).*cloud connect"):
        pairing.wait_for_approval(client, ticket, poll_interval=0.05, timeout=60)


def test_the_code_ttl_runs_out():
    with FakeCloud(code_ttl=0.4) as cloud, CloudClient(cloud.url) as client:
        ticket = pairing.request_code(client, machine_id="m-1", hostname="h")
        with pytest.raises(pairing.PairingFailed) as failed:
            pairing.wait_for_approval(client, ticket, poll_interval=0.05, timeout=30)
        assert failed.value.kind == "expired"  # the code's 0.4 s TTL, not the 30 s wait, ended it


def test_timeout_seconds(home, cloud):
    client, ticket = start(cloud, home)
    with pytest.raises(pairing.PairingFailed, match=r"after 0.3s \(--timeout-seconds\)") as failed:
        pairing.wait_for_approval(client, ticket, poll_interval=0.05, timeout=0.3)
    assert failed.value.kind == "timeout"


def test_withdrawing_cancels_the_code_on_the_cloud_idempotently(home, cloud):
    client, ticket = start(cloud, home)
    with client:
        assert pairing.withdraw(client, ticket) == (
            f"Code {ticket.code} cancelled on {cloud.host}: it can no longer be approved."
        )
        assert cloud.pairings[ticket.code].status == "cancelled"
        assert "cancelled on" in pairing.withdraw(client, ticket)
        with pytest.raises(pairing.PairingFailed) as failed:
            pairing.wait_for_approval(client, ticket, poll_interval=0.05, timeout=5)
        assert failed.value.kind == "withdrawn"


def test_a_cancel_that_cannot_reach_the_cloud_says_the_code_dies_by_its_ttl(home, cloud):
    client, ticket = start(cloud, home)
    client.close()
    cloud.go_down()
    with CloudClient(cloud.url) as unreachable:
        said = pairing.withdraw(unreachable, ticket)
    assert said.startswith(f"Could not cancel code {ticket.code} on {cloud.host}")
    assert f"expires at {ticket.expires_at:%H:%M} UTC" in said and "Do not approve it" in said


def test_a_cloud_blip_while_polling_only_delays(home, cloud):
    client, ticket = start(cloud, home)
    retries: list[str] = []
    retried = threading.Event()
    cloud.go_down()

    def back_and_approve() -> None:
        cloud.come_up()
        cloud.approve(ticket.code)

    when(lambda: retried.wait(60), back_and_approve)  # back once the meter has met the blip
    approval = pairing.wait_for_approval(
        client,
        ticket,
        poll_interval=0.05,
        timeout=60,
        on_retry=lambda said: (retries.append(said), retried.set()),
    )
    assert approval.token and retries and "retrying" in retries[0]


def test_unreachable_and_rate_limited_starts_say_what_to_do(cloud):
    cloud.fail_next(1, status=429, retry_after=30, path="/v1/pairing/start")
    with CloudClient(cloud.url) as client:
        with pytest.raises(pairing.PairingFailed, match="rate-limiting pairing requests: retry in 30s"):
            pairing.request_code(client, machine_id="m", hostname="h")
        assert pairing.request_code(client, machine_id="m", hostname="h").code
    dead = CloudClient("http://127.0.0.1:9")
    with pytest.raises(pairing.PairingFailed, match=r"cannot reach 127\.0\.0\.1:9"):
        pairing.request_code(dead, machine_id="m", hostname="h")
    dead.close()


def test_connect_needs_a_running_daemon(home):
    result = CliRunner().invoke(main, ["cloud", "connect", "--base-url", "http://127.0.0.1:9"])
    assert result.exit_code == 1
    assert "daemon not running: run halton-meter status and halton-meter start" in result.output
    assert not home.cloud_credentials.exists()
