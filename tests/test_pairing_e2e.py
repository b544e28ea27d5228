"""Pair real meters with the real cloud and keep them in sync (spec: connect-your-meter.txt).

Every process is real: the API under uvicorn on PostgreSQL and the embedded warehouse, each meter as
`halton-meter start` with its CLI in subprocesses, fake providers only where the real ones would be.
"""

from __future__ import annotations

import json
import os
import re
import signal
import tomllib

import openai
import psycopg
import pytest

from cloud_support import CloudProcess, Person
from halton_meter.testing.fake_cloud import store_rows
from halton_meter.testing.processes import MeterProcess, wait_for

CODE_LINE = re.compile(r"Pairing code: ([0-9A-Z]{4}-[0-9A-Z]{4})")


def provider_config(providers) -> tuple[str, str]:
    proxy = f'upstream_ca_file = "{providers.pki.ca_path}"\n'
    tables = "".join(
        f'[providers.{name}]\nupstream = "{fake.url}"\n' for name, fake in providers.providers.items()
    )
    return proxy, tables


def new_meter(tmp_path, name: str, cloud: CloudProcess, providers) -> MeterProcess:
    proxy, tables = provider_config(providers)
    (tmp_path / name).mkdir()
    return MeterProcess(
        tmp_path / name, base_url=cloud.url, dashboard=cloud.url, proxy_config=proxy, extra_config=tables
    )


def connect(meter: MeterProcess, person: Person, cloud: CloudProcess, workspace: str | None = None) -> str:
    """`cloud connect`, approved by `person` over HTTP; returns the CLI's output."""
    process = meter.spawn("cloud", "connect", "--base-url", cloud.url, "--poll-interval-seconds", "0.2")
    process.wait_line("Waiting for approval", timeout=30)
    code = next(m.group(1) for line in process.seen if (m := CODE_LINE.search(line)))
    approved = person.approve(code, workspace)
    assert approved.status_code == 200 and "Approved" in approved.text, approved.text
    exit_code, out, err = process.finish(timeout=30)
    assert exit_code == 0, out + err
    return out


def warehouse_rows(warehouse, machine_id: str) -> tuple[int, int]:
    """(rows as read — deduplicated —, rows physically stored) for one machine."""
    raw = warehouse.databases.raw
    client = warehouse.client()
    read = client.query(
        f"SELECT count() FROM {raw}.requests_dedup WHERE machine_id = %(m)s", {"m": machine_id}
    )
    stored = client.query(f"SELECT count() FROM {raw}.requests WHERE machine_id = %(m)s", {"m": machine_id})
    return read.result_rows[0][0], stored.result_rows[0][0]


def cloud_status(meter: MeterProcess) -> dict:
    return meter.json("cloud", "status")


def device_id(person: Person, machine_id: str) -> str:
    listed = person.client.get(f"/v1/{person.workspace_slug}/devices").json()
    return next(d["id"] for d in listed if d["machine_id"] == machine_id)


def machine_id_of(meter: MeterProcess) -> str:
    return json.loads(meter.paths.machine.read_text())["machine_id"]


def test_connect_capture_sync_revoke_resume_reconnect_disconnect(
    tmp_path, cloud, person, providers, warehouse
):
    meter = new_meter(tmp_path, "laptop", cloud, providers)
    machine = machine_id_of(meter)
    not_running = meter.cli("cloud", "connect", "--base-url", cloud.url)
    assert not_running.returncode != 0 and "daemon not running" in not_running.stderr + not_running.stdout

    with meter.running():
        out = connect(meter, person, cloud)
        assert "Requesting pairing code from" in out and f"{cloud.url}/connect?code=" in out
        # The files, modes and config block the spec names.
        assert oct(meter.paths.cloud_credentials.stat().st_mode & 0o777) == "0o600"
        assert oct(meter.paths.cloud_key.stat().st_mode & 0o777) == "0o600"
        config = tomllib.loads(meter.paths.config.read_text())["cloud"]
        assert config["enabled"] is True and config["base_url"] == cloud.url and config["workspace_id"]
        whoami = meter.json("cloud", "whoami")
        assert whoami["workspace_slug"] == person.workspace_slug and whoami["machine_id"] == machine

        # A real call through the meter (base-URL mode) lands in ClickHouse.
        client = openai.OpenAI(
            base_url=f"http://127.0.0.1:{meter.port}/openai/v1", api_key="sk-test", max_retries=0
        )
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
        wait_for(
            lambda: warehouse_rows(warehouse, machine)[0] == 1, timeout=30, what="the call in ClickHouse"
        )
        row = (
            warehouse.client()
            .query(
                f"SELECT provider, model_requested, input_tokens, output_tokens, cost_usd IS NOT NULL "
                f"FROM {warehouse.databases.raw}.requests_dedup WHERE machine_id = %(m)s",
                {"m": machine},
            )
            .result_rows[0]
        )
        assert row[:2] == ("openai", "gpt-4o") and row[2] > 0 and row[3] > 0 and row[4]
        assert cloud_status(meter)["state"] == "ACTIVE"

        # Revoked in settings: the next sync gets a real 401 and the meter pauses.
        workspace = person.workspace_slug
        devices_page = f"/{workspace}/settings/devices"
        revoked = person.post_form(f"{devices_page}/{device_id(person, machine)}/revoke", devices_page)
        assert revoked.status_code == 303
        store_rows(meter.paths, 3)
        wait_for(
            lambda: cloud_status(meter).get("paused_reason") == "paused_unauthorised",
            timeout=30,
            what="the 401 pause",
        )
        assert cloud_status(meter)["state"] == "PAUSED"
        resumed = meter.cli("cloud", "resume")
        assert resumed.returncode != 0 and "revoked" in resumed.stdout + resumed.stderr

        # Re-connect works, keeps the machine id, and the backlog drains.
        connect(meter, person, cloud)
        assert machine_id_of(meter) == machine
        wait_for(
            lambda: warehouse_rows(warehouse, machine)[0] == 4,
            timeout=30,
            what="the backlog after re-pairing",
        )
        assert cloud_status(meter)["state"] == "ACTIVE"

        disconnected = meter.cli("cloud", "disconnect")
        assert disconnected.returncode == 0, disconnected.stdout + disconnected.stderr
        assert "Token revoked." in disconnected.stdout
        assert not meter.paths.cloud_credentials.exists() and not meter.paths.cloud_key.exists()
        assert tomllib.loads(meter.paths.config.read_text())["cloud"]["enabled"] is False
        assert cloud_status(meter)["state"] == "NOT-CONFIGURED"
        # Capture continues locally.
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "again"}])
        assert meter.json("report", "today")["totals"]["calls"] >= 2


def test_removed_machine_pauses_forbidden_and_resumes_after_reinstate(
    tmp_path, cloud, person, providers, warehouse
):
    meter = new_meter(tmp_path, "laptop", cloud, providers)
    machine = machine_id_of(meter)
    with meter.running():
        connect(meter, person, cloud)
        page = f"/{person.workspace_slug}/settings/devices"
        device = device_id(person, machine)
        assert person.post_form(f"{page}/{device}/remove", page).status_code == 303
        store_rows(meter.paths, 2)
        wait_for(
            lambda: cloud_status(meter).get("paused_reason") == "paused_forbidden",
            timeout=30,
            what="403 pause",
        )
        refused = meter.cli("cloud", "resume")
        assert (
            refused.returncode != 0
            and "Do not run `halton-meter cloud connect`" in refused.stdout + refused.stderr
        )
        assert person.post_form(f"{page}/{device}/reinstate", page).status_code == 303
        assert meter.cli("cloud", "resume").returncode == 0
        wait_for(
            lambda: warehouse_rows(warehouse, machine)[0] == 2, timeout=30, what="rows after reinstating"
        )


def test_wrong_and_expired_codes(tmp_path, cloud, person, providers, postgres_url):
    wrong = person.client.get("/connect?code=ZZZZ-ZZZZ")
    assert wrong.status_code == 404 and "code not found" in wrong.text

    meter = new_meter(tmp_path, "laptop", cloud, providers)
    with meter.running():
        process = meter.spawn("cloud", "connect", "--base-url", cloud.url, "--poll-interval-seconds", "0.2")
        process.wait_line("Waiting for approval", timeout=30)
        with psycopg.connect(postgres_url) as conn:
            conn.execute("UPDATE pairing_codes SET expires_at = now() - interval '1 second'")
        exit_code, out, err = process.finish(timeout=40)
        assert exit_code != 0 and "expired" in out + err
        assert not meter.paths.cloud_credentials.exists()


def test_two_machines_in_one_workspace(tmp_path, cloud, person, providers, warehouse):
    meters = [new_meter(tmp_path, name, cloud, providers) for name in ("alpha", "beta")]
    with meters[0].running(), meters[1].running():
        for meter in meters:
            connect(meter, person, cloud)
        for count, meter in zip((5, 7), meters, strict=True):
            store_rows(meter.paths, count)
        for count, meter in zip((5, 7), meters, strict=True):
            wait_for(
                lambda m=meter, c=count: warehouse_rows(warehouse, machine_id_of(m))[0] == c,
                timeout=30,
                what="each machine's rows",
            )
    listed = person.client.get(f"/v1/{person.workspace_slug}/devices").json()
    assert sorted(d["machine_id"] for d in listed) == sorted(machine_id_of(m) for m in meters)


def test_kill_9_mid_sync_then_restart_counts_every_row_once(tmp_path, cloud, person, providers, warehouse):
    meter = new_meter(tmp_path, "laptop", cloud, providers)
    machine = machine_id_of(meter)
    with meter.running():
        connect(meter, person, cloud)
        meter.cli("cloud", "pause")
    total = 20_000
    store_rows(meter.paths, total)
    assert meter.cli("cloud", "resume").returncode == 0
    started = meter.cli("start")
    assert started.returncode == 0, started.stdout + started.stderr
    wait_for(lambda: warehouse_rows(warehouse, machine)[1] > 0, timeout=60, what="the first batch")
    os.kill(meter.pid(), signal.SIGKILL)
    landed_before_kill = warehouse_rows(warehouse, machine)[0]
    assert landed_before_kill < total, "the kill came too late to interrupt the sync"
    with meter.running():
        wait_for(lambda: meter.unsynced() == 0, timeout=90, what="the backlog after restart")
    assert warehouse_rows(warehouse, machine)[0] == total


def test_api_outage_delays_sync_then_drains(tmp_path, cloud, person, providers, warehouse):
    meter = new_meter(tmp_path, "laptop", cloud, providers)
    machine = machine_id_of(meter)
    with meter.running():
        connect(meter, person, cloud)
        cloud.stop()
        store_rows(meter.paths, 50)
        wait_for(lambda: cloud_status(meter)["state"] == "DEGRADED", timeout=30, what="DEGRADED")
        assert meter.unsynced() == 50
        cloud.start()
        wait_for(lambda: meter.unsynced() == 0, timeout=60, what="the backlog to drain")
        wait_for(lambda: cloud_status(meter)["state"] == "ACTIVE", timeout=30, what="ACTIVE")
    assert warehouse_rows(warehouse, machine)[0] == 50


def late_approval(person: Person, code: str) -> object:
    """Approve `code` with the form /connect posts (the CSRF token from a page that renders for anyone)."""
    return person.client.post(
        "/connect",
        data={
            "csrf_token": person.csrf("/connect"),
            "code": code,
            "workspace": person.workspace_slug,
            "decision": "approve",
        },
    )


def devices_of(person: Person) -> list[dict]:
    return person.client.get(f"/v1/{person.workspace_slug}/devices").json()


def test_a_timed_out_connect_cancels_its_code(tmp_path, cloud, person, providers):
    meter = new_meter(tmp_path, "laptop", cloud, providers)
    with meter.running():
        process = meter.spawn("cloud", "connect", "--base-url", cloud.url, "--timeout-seconds", "1")
        exit_code, out, err = process.finish(timeout=60)
        code = next(m.group(1) for line in out.splitlines() if (m := CODE_LINE.search(line)))
        assert exit_code == 1 and "Gave up waiting for approval after 1s" in err
        assert f"Code {code} cancelled on" in err and "it can no longer be approved" in err
        refused = late_approval(person, code)
        assert refused.status_code == 404 and "cancelled in the terminal" in refused.text
        assert devices_of(person) == [] and not meter.paths.cloud_credentials.exists()


def test_ctrl_c_on_a_re_connect_cancels_the_code_and_keeps_the_machine_paired(
    tmp_path, cloud, person, providers
):
    meter = new_meter(tmp_path, "laptop", cloud, providers)
    machine = machine_id_of(meter)
    with meter.running():
        connect(meter, person, cloud)
        token = json.loads(meter.paths.cloud_credentials.read_text())["token"]
        asked = meter.cli("cloud", "connect", "--base-url", cloud.url)
        assert asked.returncode == 1 and "--force" in asked.stderr

        again = meter.spawn(
            "cloud", "connect", "--base-url", cloud.url, "--poll-interval-seconds", "0.2", "--force"
        )
        again.wait_line("Waiting for approval", timeout=30)
        code = next(m.group(1) for line in again.seen if (m := CODE_LINE.search(line)))
        again.process.send_signal(signal.SIGINT)
        exit_code, _, err = again.finish(timeout=30)
        assert exit_code == 130 and "This machine stays paired as before." in err, err
        assert f"Code {code} cancelled on" in err and "Traceback" not in err
        assert late_approval(person, code).status_code == 404

        # Still paired with the same token, and it still works against the real cloud.
        assert json.loads(meter.paths.cloud_credentials.read_text())["token"] == token
        assert meter.json("cloud", "whoami")["machine_id"] == machine
        assert [(d["machine_id"], d["status"]) for d in devices_of(person)] == [(machine, "active")]
        store_rows(meter.paths, 2)
        wait_for(lambda: meter.unsynced() == 0, timeout=30, what="rows synced with the kept token")


@pytest.mark.browser
def test_an_open_approve_page_refuses_a_code_cancelled_by_ctrl_c(
    tmp_path, cloud, person, providers, artifacts_dir, chromium
):

    meter = new_meter(tmp_path, "laptop", cloud, providers)
    with meter.running():
        process = meter.spawn("cloud", "connect", "--base-url", cloud.url, "--poll-interval-seconds", "0.2")
        context = chromium.new_context()
        page = context.new_page()
        sign_in_at_approve_page(page, process, person)

        process.process.send_signal(signal.SIGINT)  # the person gives up in the terminal...
        exit_code, _, err = process.finish(timeout=30)
        assert exit_code == 130 and "it can no longer be approved" in err, err

        page.click("button[value=approve]")  # ...and someone approves the page left open
        page.wait_for_selector("[role=alert]")
        page.screenshot(path=str(artifacts_dir / "connect-cancelled.png"), full_page=True)
        assert "cancelled in the terminal" in page.inner_text("[role=alert]")
        assert page.locator("[data-testid=pairing-result]").count() == 0
        context.close()
    assert devices_of(person) == [] and not meter.paths.cloud_credentials.exists()


@pytest.mark.browser
def test_approve_by_clicking_through_chromium(
    tmp_path, cloud, person, providers, warehouse, artifacts_dir, chromium
):

    meter = new_meter(tmp_path, "laptop", cloud, providers)
    with meter.running():
        process = meter.spawn("cloud", "connect", "--base-url", cloud.url, "--poll-interval-seconds", "0.2")
        context = chromium.new_context()
        page = context.new_page()
        errors: list[str] = []
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        sign_in_at_approve_page(page, process, person)
        assert page.inner_text("[data-testid=machine-id]") == machine_id_of(meter)
        page.screenshot(path=str(artifacts_dir / "connect-approve.png"), full_page=True)
        page.click("button[value=approve]")
        page.wait_for_selector("[data-testid=pairing-result]")
        page.screenshot(path=str(artifacts_dir / "connect-approved.png"), full_page=True)
        assert "Approved" in page.inner_text("[data-testid=pairing-result]")
        exit_code, out, err = process.finish(timeout=30)
        assert exit_code == 0, out + err
        assert not errors, errors
        context.close()
    assert meter.paths.cloud_credentials.exists()


def sign_in_at_approve_page(page, process, person) -> None:
    """Open the approve URL the terminal printed, signed out: sign in, and wait to be back at the approval."""
    from cloud_support import PASSWORD

    process.wait_line("Waiting for approval", timeout=30)
    approve_url = next(line.split("Approve at: ")[1] for line in process.seen if "Approve at: " in line)
    page.goto(approve_url)
    page.fill("input[name=email]", person.email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("[data-testid=machine-id]")
