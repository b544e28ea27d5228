"""The control-plane snapshot copies every table whole; staging reads only the newest copy."""

from __future__ import annotations

import dagster as dg
import psycopg

from halton_pipelines.defs.snapshot import control_plane_snapshot
from halton_pipelines.resources import ControlPlaneResource, WarehouseResource
from halton_pipelines.testing.factories import HandWorkspace


def _resources(stores) -> dict:
    return {
        "warehouse": WarehouseResource(clickhouse_url=stores.warehouse_url, database_prefix=stores.prefix),
        "control_plane": ControlPlaneResource(database_url=stores.control_plane_url),
    }


def _newest(stores, table: str, columns: str) -> list[tuple]:
    raw = stores.databases.raw
    return (
        stores.client()
        .query(
            f"SELECT {columns} FROM {raw}.{table} FINAL WHERE snapshot_at >= "
            f"(SELECT max(snapshot_at) FROM {raw}.snapshots FINAL WHERE source = '{table}') ORDER BY 1"
        )
        .result_rows
    )


def test_copies_and_then_forgets_what_the_control_plane_deleted(stores) -> None:
    hand = HandWorkspace()
    hand.seed_control_plane(stores.control_plane_url)
    result = dg.materialize([control_plane_snapshot], resources=_resources(stores))
    assert result.success
    assert _newest(stores, "projects", "slug, name") == [("alpha", "Alpha")]
    assert _newest(stores, "devices", "machine_id, hostname, toString(paired_by)") == [
        ("m-hand", "hand-laptop", str(hand.user_id))
    ]
    assert _newest(stores, "members", "email, role") == [("hand@example.com", "owner")]
    assert _newest(stores, "billing_statements", "provider, toString(period), amount") == [
        ("gemini", "2026-09-01", __import__("decimal").Decimal("5"))
    ]
    with psycopg.connect(stores.control_plane_url) as conn:
        conn.execute("DELETE FROM projects")
        conn.execute("INSERT INTO cost_centers (workspace_id, name) VALUES (%s, 'R&D')", (hand.workspace_id,))
    assert dg.materialize([control_plane_snapshot], resources=_resources(stores)).success
    assert _newest(stores, "projects", "slug") == []
    assert _newest(stores, "cost_centers", "name") == [("R&D",)]
    logged = (
        stores.client()
        .query(f"SELECT count() FROM {stores.databases.raw}.snapshots WHERE source = 'projects'")
        .result_rows[0][0]
    )
    assert logged >= 1
