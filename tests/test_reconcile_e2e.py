"""Reconcile a real meter with the real cloud (issue 18): a batch lost in the warehouse is found, re-sent and
then matches; rows only the cloud holds are reported, never deleted; `cloud status` shows the last result.

Every process is real: the API under uvicorn on PostgreSQL and the embedded warehouse, the meter as
`halton-meter start` with its CLI in subprocesses. A lost batch is simulated by deleting this machine's rows
from raw.requests; every check waits on a condition.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

from test_pairing_e2e import connect, machine_id_of, provider_config, warehouse_rows

from halton_meter.testing.fake_cloud import store_rows
from halton_meter.testing.processes import MeterProcess, wait_for


def new_meter(tmp_path, name: str, cloud, providers, cloud_config: str = "") -> MeterProcess:
    proxy, tables = provider_config(providers)
    (tmp_path / name).mkdir()
    return MeterProcess(
        tmp_path / name,
        base_url=cloud.url,
        dashboard=cloud.url,
        proxy_config=proxy,
        extra_config=cloud_config + tables,
    )


def lose_in_warehouse(warehouse, uids: list[str]) -> None:
    """A lost batch: the rows leave raw.requests (synchronously) while the meter still has them as synced."""
    named = ",".join(f"'{uid}'" for uid in uids)
    warehouse.client().command(
        f"ALTER TABLE {warehouse.databases.raw}.requests DELETE WHERE request_uid IN ({named})",
        settings={"mutations_sync": 2},
    )


def test_a_lost_batch_is_found_resent_and_then_matches(tmp_path, cloud, person, providers, warehouse):
    meter = new_meter(tmp_path, "laptop", cloud, providers)
    machine = machine_id_of(meter)
    # Fixed times on two UTC days (today's midnight is never in the future), whenever the test runs.
    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    yesterday = midnight - timedelta(hours=12)
    with meter.running():
        connect(meter, person, cloud)
        earlier = store_rows(meter.paths, 4, started_at=yesterday, ended_at=yesterday + timedelta(seconds=1))
        today = store_rows(meter.paths, 6, started_at=midnight, ended_at=midnight + timedelta(seconds=1))
        wait_for(lambda: warehouse_rows(warehouse, machine)[0] == 10, timeout=30, what="the rows synced")
        wait_for(lambda: meter.unsynced() == 0, timeout=30, what="the rows marked synced")
        # The worker reconciles after its first clean pass, then not for reconcile_hours (24): from here on
        # only the CLI reconciles, so what it finds is what this test did.
        wait_for(
            lambda: meter.json("cloud", "status")["last_reconcile_at"] is not None,
            timeout=30,
            what="the worker's first reconcile",
        )

        lose_in_warehouse(warehouse, today[:3])
        assert warehouse_rows(warehouse, machine)[0] == 7
        found = meter.json("cloud", "reconcile", "--days", "7")
        assert found["resent_rows"] == 3 and found["cloud_only_rows"] == 0
        assert found["matched_days"] == 1  # yesterday
        (difference,) = found["differences"]
        assert (difference["meter_rows"], difference["cloud_rows"], difference["resent_rows"]) == (6, 3, 3)
        # The running daemon re-sends them (the cloud keeps one copy per request_uid).
        wait_for(
            lambda: warehouse_rows(warehouse, machine)[0] == 10, timeout=30, what="the lost rows re-sent"
        )

        again = meter.json("cloud", "reconcile", "--days", "7")
        assert (again["matched_days"], again["resent_rows"], again["differences"]) == (2, 0, [])
        status = meter.json("cloud", "status")
        assert status["last_reconcile_at"] == again["at"]
        assert status["last_reconcile"]["matched_days"] == 2
        text = meter.cli("cloud", "status").stdout
        assert "Last reconcile:" in text and "(2 days matched, 0 rows re-sent, 0 differences)" in text

        # The meter's database lost two of yesterday's rows (a reset): reported, and the cloud keeps them.
        with sqlite3.connect(meter.paths.db) as conn:
            conn.executemany("DELETE FROM requests WHERE request_uid = ?", [(uid,) for uid in earlier[:2]])
        reset = meter.json("cloud", "reconcile", "--days", "7")
        assert (reset["resent_rows"], reset["cloud_only_rows"]) == (0, 2)
        assert reset["differences"][0]["day"] == yesterday.date().isoformat()
        assert warehouse_rows(warehouse, machine)[0] == 10
        shown = meter.cli("cloud", "reconcile", "--days", "7").stdout
        assert "2 row(s) only in the cloud" in shown and "left as they are" in shown


def test_the_worker_reconciles_on_its_own_and_heals_a_lost_batch(
    tmp_path, cloud, person, providers, warehouse
):
    # reconcile_hours = 0.001: every 3.6 s instead of daily, so the worker's own reconcile is seen in a test.
    meter = new_meter(tmp_path, "laptop", cloud, providers, cloud_config="reconcile_hours = 0.001\n")
    machine = machine_id_of(meter)
    with meter.running():
        connect(meter, person, cloud)
        uids = store_rows(meter.paths, 5)
        wait_for(lambda: warehouse_rows(warehouse, machine)[0] == 5, timeout=30, what="the rows synced")
        wait_for(lambda: meter.unsynced() == 0, timeout=30, what="the rows marked synced")
        lose_in_warehouse(warehouse, uids[:2])
        wait_for(lambda: warehouse_rows(warehouse, machine)[0] == 5, timeout=60, what="the worker's re-send")
        wait_for(
            lambda: (meter.json("cloud", "status").get("last_reconcile") or {}).get("differences") == [],
            timeout=30,
            what="a reconcile that matches",
        )


def test_reconcile_refuses_a_bad_range_and_an_unpaired_machine(tmp_path, cloud, providers):
    meter = new_meter(tmp_path, "laptop", cloud, providers)
    too_long = meter.cli("cloud", "reconcile", "--days", "91")
    assert too_long.returncode == 2 and "--days" in too_long.stderr
    unpaired = meter.cli("cloud", "reconcile")
    assert unpaired.returncode != 0 and "cloud connect" in unpaired.stderr
    never = meter.json("cloud", "status")
    assert never["last_reconcile_at"] is None and never["last_reconcile"] is None
