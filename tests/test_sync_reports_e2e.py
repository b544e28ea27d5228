"""Meters report their sync state; the overview's sync banner shows it (spec: cloud-dashboards.txt).

Real meters (`halton-meter start`) against the real API (uvicorn over PostgreSQL and the embedded
warehouse). The intervals are made small through settings: the meter heartbeats every 0.2 s and the cloud
calls a device NOT-REPORTING after SILENT_AFTER_S of silence. Every check waits on a condition.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from test_pairing_e2e import connect, device_id, machine_id_of, provider_config

from cloud_support import CloudProcess, Person
from halton_meter.testing.fake_cloud import store_rows
from halton_meter.testing.processes import MeterProcess, free_port, wait_for

SILENT_AFTER_S = 4.0
METER_CLOUD = "heartbeat_seconds = 0.2\nretry_max_seconds = 0.5\nhealth_probe_seconds = 0.2\n"


@pytest.fixture
def cloud(postgres_url: str, warehouse, tmp_path: Path) -> Iterator[CloudProcess]:
    """The `cloud` every fixture here uses (`person` signs up on it), with a short silence window."""
    process = CloudProcess.on_stores(
        tmp_path,
        database_url=postgres_url,
        warehouse_url=warehouse.url,
        prefix=warehouse.prefix,
        DEVICE_SILENT_AFTER_SECONDS=str(SILENT_AFTER_S),
    )
    process.start()
    yield process
    process.stop()


def new_meter(tmp_path: Path, name: str, base_url: str, providers) -> MeterProcess:
    proxy, tables = provider_config(providers)
    (tmp_path / name).mkdir()
    return MeterProcess(
        tmp_path / name,
        base_url=base_url,
        dashboard=base_url,
        proxy_config=proxy,
        extra_config=METER_CLOUD + tables,
    )


def banner(person: Person) -> dict:
    """The overview's sync banner, from its JSON twin (the marts need not exist for it)."""
    response = person.client.get(f"/v1/{person.workspace_slug}/sync")
    assert response.status_code == 200, response.text
    return response.json()


def line(person: Person, device: str) -> dict:
    return next(d for d in banner(person)["devices"] if d["device_id"] == device)


def listed(person: Person, device: str) -> dict:
    return next(
        d for d in person.client.get(f"/v1/{person.workspace_slug}/devices").json() if d["id"] == device
    )


def wait_reporting(person: Person, device: str) -> None:
    """Until the meter's own report has arrived: before it, a just-paired device counts as ACTIVE on trust,
    and one an admin then revokes or removes is taken for a meter that was never running (left out)."""
    wait_for(
        lambda: line(person, device).get("reported_at") is not None,
        timeout=60,
        what="the meter's first state report",
    )


def wait_banner(person: Person, device: str, colour: str, state: str, reason: str | None = None) -> dict:
    def shown() -> bool:
        sync = banner(person)
        mine = next((d for d in sync["devices"] if d["device_id"] == device), None)
        return (
            sync["status"] == colour
            and mine is not None
            and (mine["state"], mine["paused_reason"]) == (state, reason)
        )

    wait_for(shown, timeout=60, what=f"a {colour} banner with the device {state} {reason or ''}")
    return line(person, device)


def stamp(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_idle_meter_stays_green_pause_turns_red_revoke_is_unauthorised(tmp_path, cloud, person, providers):
    meter = new_meter(tmp_path, "laptop", cloud.url, providers)
    with meter.running():
        connect(meter, person, cloud)
        device = device_id(person, machine_id_of(meter))

        # Idle and healthy: no batch ever comes, yet heartbeats keep it ACTIVE beyond the silence window
        # (the cloud used to read a quiet device as DEGRADED).
        def heard_after_silence() -> bool:
            mine = listed(person, device)
            return (
                mine["reported_at"] is not None
                and (stamp(mine["reported_at"]) - stamp(mine["paired_at"])).total_seconds()
                > 2 * SILENT_AFTER_S
            )

        wait_for(heard_after_silence, timeout=60, what="heartbeats for two silence windows")
        assert listed(person, device)["last_sync_at"] is None
        idle = wait_banner(person, device, "green", "ACTIVE")
        assert idle["unsynced_rows"] == 0 and idle["meter_version"]

        # Rows sync; the report after the pass says none are left.
        store_rows(meter.paths, 3)
        wait_for(
            lambda: listed(person, device)["last_sync_at"] is not None and meter.unsynced() == 0,
            timeout=60,
            what="the rows synced",
        )
        wait_for(lambda: line(person, device)["unsynced_rows"] == 0, timeout=30, what="0 unsynced reported")

        # A manual pause is red, with its reason and the rows waiting on the machine.
        assert meter.cli("cloud", "pause").returncode == 0
        store_rows(meter.paths, 2)
        wait_for(
            lambda: line(person, device)["unsynced_rows"] == 2 and banner(person)["status"] == "red",
            timeout=60,
            what="the paused meter's 2 waiting rows on a red banner",
        )
        paused = wait_banner(person, device, "red", "PAUSED", "paused_manual")
        assert paused["source"] == "meter"
        page = person.client.get(f"/{person.workspace_slug}/settings/devices").text
        assert (
            'data-field="reported-state"><span class="pill PAUSED">PAUSED</span> <code>paused_manual' in page
        )
        overview = person.client.get(f"/{person.workspace_slug}/overview").text
        assert 'data-sync="red"' in overview and f'data-device="{device}" data-state="PAUSED"' in overview

        assert meter.cli("cloud", "resume").returncode == 0
        wait_banner(person, device, "green", "ACTIVE")
        wait_reporting(person, device)

        # Revoked in settings: the meter cannot authenticate any more; the cloud knows from its records.
        workspace_page = f"/{person.workspace_slug}/settings/devices"
        assert person.post_form(f"{workspace_page}/{device}/revoke", workspace_page).status_code == 303
        revoked = wait_banner(person, device, "red", "PAUSED", "paused_unauthorised")
        assert revoked["source"] == "control_plane"
        store_rows(meter.paths, 1)
        wait_for(
            lambda: meter.json("cloud", "status").get("paused_reason") == "paused_unauthorised",
            timeout=30,
            what="the meter's own 401 pause",
        )

        # Paired again: the old report no longer counts, the new one does; disconnecting leaves the banner.
        connect(meter, person, cloud)
        wait_banner(person, device, "green", "ACTIVE")
        assert meter.cli("cloud", "disconnect").returncode == 0
        wait_for(lambda: banner(person)["status"] == "none", timeout=30, what="no device left in the banner")


def test_removed_is_forbidden_and_a_stopped_meter_is_not_reporting(tmp_path, cloud, person, providers):
    meter = new_meter(tmp_path, "laptop", cloud.url, providers)
    page = f"/{person.workspace_slug}/settings/devices"
    with meter.running():
        connect(meter, person, cloud)
        device = device_id(person, machine_id_of(meter))
        wait_banner(person, device, "green", "ACTIVE")
        wait_reporting(person, device)
        assert person.post_form(f"{page}/{device}/remove", page).status_code == 303
        removed = wait_banner(person, device, "red", "PAUSED", "paused_forbidden")
        assert removed["source"] == "control_plane"
        store_rows(meter.paths, 1)
        wait_for(
            lambda: meter.json("cloud", "status").get("paused_reason") == "paused_forbidden",
            timeout=30,
            what="the meter's own 403 pause",
        )
        assert person.post_form(f"{page}/{device}/reinstate", page).status_code == 303
        assert meter.cli("cloud", "resume").returncode == 0
        wait_banner(person, device, "green", "ACTIVE")
    # The meter stopped: it says nothing more, and after the silence window the banner says so.
    wait_banner(person, device, "amber", "NOT-REPORTING")


def test_warehouse_outage_on_ingestion_makes_the_meter_degraded(
    tmp_path, cloud, person, providers, warehouse
):
    """A second API process on the same PostgreSQL whose warehouse is unreachable: batches answer 503 while
    reports (PostgreSQL only) still arrive, so the meter's own DEGRADED reaches the banner."""
    ingest = CloudProcess(
        env={
            **cloud.env,
            "HALTON_CLICKHOUSE_URL": f"http://127.0.0.1:{free_port()}",
            "HALTON_WAREHOUSE_RETRIES": "0",
        },
        port=free_port(),
        log_path=tmp_path / "ingest.log",
    )
    ingest.env["HALTON_PUBLIC_URL"] = ingest.url
    ingest.start(healthy=False)
    try:
        meter = new_meter(tmp_path, "laptop", ingest.url, providers)
        with meter.running():
            connect(meter, person, ingest)
            device = device_id(person, machine_id_of(meter))
            wait_banner(person, device, "green", "ACTIVE")
            store_rows(meter.paths, 4)
            degraded = wait_banner(person, device, "amber", "DEGRADED")
            assert degraded["unsynced_rows"] == 4
            assert meter.json("cloud", "status")["state"] == "DEGRADED"
    finally:
        ingest.stop()
