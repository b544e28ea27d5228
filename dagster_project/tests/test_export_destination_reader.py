"""Export destinations: the secret access key sealed for its own purpose, opened only for an upload; a secret
that does not open fails its workspace's run (on its settings page and in the audit log), never skipped."""

from __future__ import annotations

from datetime import date

import dagster as dg
import psycopg
import pytest

from halton_meter.secretbox import SecretBoxError, open_export_secret, open_provider_key, seal_export_secret
from halton_pipelines.defs.parquet_exports import parquet_export
from halton_pipelines.export_destination_reader import load_destinations
from halton_pipelines.resources import ExportDestinationsResource, WarehouseResource
from halton_pipelines.testing.factories import SECRET, HandWorkspace


def test_round_trip_a_wrong_secret_and_no_crossing_purposes() -> None:
    token = seal_export_secret(SECRET, "wJalrXUtnFEMI")
    assert b"wJalr" not in token
    assert open_export_secret(SECRET, token) == "wJalrXUtnFEMI"
    with pytest.raises(SecretBoxError, match=r"does not decrypt.*save the export settings again"):
        open_export_secret("another-secret", token)
    # A sealed export secret is no provider key, and the other way round.
    with pytest.raises(SecretBoxError):
        open_provider_key(SECRET, token)


def test_destinations_are_read_and_an_unreadable_secret_fails_the_run(stores) -> None:
    hand = HandWorkspace()
    hand.seed_control_plane(stores.control_plane_url)
    with psycopg.connect(stores.control_plane_url) as conn:
        conn.execute(
            "INSERT INTO export_destinations (workspace_id, bucket, prefix, endpoint_url, region, access_key_id,"
            " secret_access_key_encrypted) VALUES (%s, 'acme', 'halton', 'http://127.0.0.1:9', 'eu-west-1',"
            " 'AKIA1', %s)",
            (hand.workspace_id, seal_export_secret(SECRET, "s3cret")),
        )
    [destination] = load_destinations(stores.control_plane_url, SECRET)
    assert destination.unreadable is None and destination.secret_access_key == "s3cret"
    assert destination.key(date(2026, 3, 1), "requests.parquet") == (
        f"halton/{hand.workspace_id}/2026-03-01/requests.parquet"
    )
    # Rotated secret: the destination is still there, saying why it cannot upload.
    [rotated] = load_destinations(stores.control_plane_url, "rotated-secret")
    assert rotated.secret_access_key == "" and "does not decrypt" in (rotated.unreadable or "")

    # A run with it fails that workspace, for the day, on its page and in its audit log.
    resources = {
        "warehouse": WarehouseResource(clickhouse_url=stores.warehouse_url, database_prefix=stores.prefix),
        "export_destinations": ExportDestinationsResource(
            database_url=stores.control_plane_url, secret_key="rotated-secret"
        ),
    }
    run = dg.materialize(
        [parquet_export], partition_key="2026-03-01", resources=resources, raise_on_error=False
    )
    assert not run.success
    with psycopg.connect(stores.control_plane_url) as conn:
        day, error = conn.execute("SELECT last_run_day, last_run_error FROM export_destinations").fetchone()
        details = conn.execute(
            "SELECT details FROM audit_events WHERE event = 'export.run' AND workspace_id = %s",
            (hand.workspace_id,),
        ).fetchone()[0]
    assert day == date(2026, 3, 1) and "does not decrypt" in error
    assert (
        details["works"] is False
        and details["day"] == "2026-03-01"
        and "does not decrypt" in details["error"]
    )


def test_no_table_yet_means_nothing_to_export(postgres_url) -> None:
    assert load_destinations(postgres_url, SECRET) == []
