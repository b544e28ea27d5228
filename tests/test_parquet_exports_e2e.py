"""Scheduled Parquet exports (issue 23): an owner points the export at an S3-compatible bucket on the settings
page, the Dagster export (a real materialize of the daily partition) writes the day's raw requests and spend
marts as Parquet with a manifest, and the files read back with pyarrow agree with the warehouse; re-running
the day rewrites the same keys; a wrong secret shows the store's refusal on the page; another workspace can
neither see nor change the configuration. Every step is an audit event.

Real processes: the API under `halton-cloud serve` on PostgreSQL and the embedded warehouse, Dagster and dbt,
and moto's S3 server (its own process, with IAM auth on, so a wrong secret is refused as S3 refuses it).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import boto3
import dagster as dg
import httpx
import psycopg
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from cloud_support import PASSWORD, Person
from halton_meter.testing.processes import free_port, wait_for
from halton_pipelines.defs.parquet_exports import parquet_export
from halton_pipelines.defs.snapshot import control_plane_snapshot
from halton_pipelines.resources import (
    ControlPlaneResource,
    ExportDestinationsResource,
    HaltonDbtResource,
    WarehouseResource,
)
from halton_pipelines.testing.factories import HandWorkspace, insert_request_rows

BUCKET = "acme-exports"
MODEL = "gpt-5-mini-2025-08-07"
# moto answers the first requests without credentials: the IAM user, its policy and its access key.
SETUP_REQUESTS = 3


class S3Server:
    def __init__(self, url: str) -> None:
        self.url = url
        self.key_id = ""
        self.secret = ""

    def client(self, key_id: str | None = None, secret: str | None = None):
        return boto3.client(
            "s3", endpoint_url=self.url, region_name="us-east-1",
            aws_access_key_id=key_id or self.key_id, aws_secret_access_key=secret or self.secret,
        )  # fmt: skip


@pytest.fixture
def s3(tmp_path: Path) -> Iterator[S3Server]:
    """moto's server on a free port with IAM auth on: one IAM user allowed S3, and its bucket."""
    port = free_port()
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": str(SETUP_REQUESTS)}
    log = (tmp_path / "moto.log").open("wb")
    process = subprocess.Popen(
        [Path(sys.executable).with_name("moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    server = S3Server(f"http://127.0.0.1:{port}")
    try:

        def up() -> bool:
            try:
                return httpx.get(f"{server.url}/moto-api/", timeout=2).status_code < 500
            except httpx.HTTPError:
                return False

        wait_for(up, timeout=60, what="moto's server")
        iam = boto3.client(
            "iam", endpoint_url=server.url, region_name="us-east-1",
            aws_access_key_id="setup", aws_secret_access_key="setup",
        )  # fmt: skip
        iam.create_user(UserName="exporter")
        iam.put_user_policy(
            UserName="exporter", PolicyName="s3",
            PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}),
        )  # fmt: skip
        key = iam.create_access_key(UserName="exporter")["AccessKey"]
        server.key_id, server.secret = key["AccessKeyId"], key["SecretAccessKey"]
        server.client().create_bucket(Bucket=BUCKET)
        yield server
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def workspace_id(postgres_url: str, slug: str) -> uuid.UUID:
    with psycopg.connect(postgres_url) as conn:
        return conn.execute("SELECT id FROM workspaces WHERE slug = %s", (slug,)).fetchone()[0]


def configure(person: Person, s3: S3Server, *, secret: str | None = None, slug: str | None = None):
    page = f"/{person.workspace_slug}/settings/exports"
    form = {
        "bucket": BUCKET, "prefix": "halton/daily", "endpoint_url": s3.url, "region": "us-east-1",
        "access_key_id": s3.key_id, "secret_access_key": secret or s3.secret,
    }  # fmt: skip
    return person.post_form(f"/{slug or person.workspace_slug}/settings/exports", page, form)


def export(warehouse, postgres_url: str, cloud, day, *, raise_on_error: bool = True):
    resources = {
        "warehouse": WarehouseResource(clickhouse_url=warehouse.url, database_prefix=warehouse.prefix),
        "export_destinations": ExportDestinationsResource(
            database_url=postgres_url, secret_key=cloud.env["HALTON_SECRET_KEY"]
        ),
    }
    return dg.materialize(
        [parquet_export], partition_key=day.isoformat(), resources=resources, raise_on_error=raise_on_error
    )


def objects(s3: S3Server) -> dict[str, str]:
    listed = s3.client().list_objects_v2(Bucket=BUCKET).get("Contents", [])
    return {o["Key"]: o["ETag"] for o in listed}


def read(s3: S3Server, key: str) -> bytes:
    return s3.client().get_object(Bucket=BUCKET, Key=key)["Body"].read()


def screenshot(chromium, cloud, person: Person, path: str, file: Path) -> None:
    context = chromium.new_context(base_url=cloud.url, viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    tab.goto("/signin")
    tab.fill("input[name=email]", person.email)
    tab.fill("input[name=password]", PASSWORD)
    tab.click("button[type=submit]")
    tab.wait_for_url("**/overview**")
    tab.goto(path)
    tab.screenshot(path=str(file), full_page=True)
    context.close()


@pytest.mark.browser
def test_a_day_exported_to_the_owners_bucket_reads_back_as_the_warehouse(
    cloud, person, s3, warehouse, postgres_url, artifacts_dir, chromium
) -> None:
    slug = person.workspace_slug
    ours = workspace_id(postgres_url, slug)
    other = Person(cloud.url, f"otto-{uuid.uuid4().hex[:6]}@example.com").sign_up("Other Co")
    theirs = workspace_id(postgres_url, other.workspace_slug)
    day = datetime.now(UTC).date() - timedelta(days=1)
    noon = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
    for workspace, costs in ((ours, ("1.25", "0.50", "2.125")), (theirs, ("9.99",))):
        hand = HandWorkspace(workspace_id=workspace)
        rows = [
            hand.row("openai", MODEL, noon + timedelta(minutes=i), Decimal(c), i) for i, c in enumerate(costs)
        ]
        # A request the day before is not the day's.
        rows.append(hand.row("openai", MODEL, noon - timedelta(days=1), Decimal("7"), 99))
        insert_request_rows(warehouse.client(), warehouse.databases, workspace, uuid.uuid4(), rows)
    marts = {
        "warehouse": WarehouseResource(clickhouse_url=warehouse.url, database_prefix=warehouse.prefix),
        "control_plane": ControlPlaneResource(database_url=postgres_url),
    }
    assert dg.materialize([control_plane_snapshot], resources=marts).success
    dbt = HaltonDbtResource(
        clickhouse_url=warehouse.url, database_prefix=warehouse.prefix, as_of=day.isoformat()
    )
    assert dbt.cli(["run", "--select", "+daily_spend +project_spend"]).wait().is_successful()

    # The owner sets the destination; the secret never comes back to the page.
    answer = configure(person, s3)
    assert answer.status_code == 303, answer.text
    page = person.client.get(f"/{slug}/settings/exports").text
    assert BUCKET in page and s3.key_id in page and s3.secret not in page
    assert 'data-run="none"' in page

    # Another workspace sees none of it and cannot change or remove it.
    assert BUCKET not in other.client.get(f"/{other.workspace_slug}/settings/exports").text
    assert configure(other, s3, secret="theirs", slug=slug).status_code in (403, 404)
    assert other.post_form(f"/{slug}/settings/exports/remove", f"/{other.workspace_slug}/settings/exports").status_code in (403, 404)  # fmt: skip
    with psycopg.connect(postgres_url) as conn:
        stored = conn.execute(
            "SELECT workspace_id, secret_access_key_encrypted FROM export_destinations"
        ).fetchall()
    assert [w for w, _ in stored] == [ours] and s3.secret.encode() not in bytes(stored[0][1])

    # The export: the day's three tables and a manifest, under <prefix>/<workspace>/<day>/.
    assert export(warehouse, postgres_url, cloud, day).success
    folder = f"halton/daily/{ours}/{day.isoformat()}"
    first = objects(s3)
    assert sorted(first) == [
        f"{folder}/{name}" for name in ("daily_spend.parquet", "manifest.json", "project_spend.parquet", "requests.parquet")
    ]  # fmt: skip
    manifest = json.loads(read(s3, f"{folder}/manifest.json"))
    assert manifest["workspace_id"] == str(ours) and manifest["day"] == day.isoformat()
    client, raw, mart = warehouse.client(), warehouse.databases.raw, warehouse.databases.marts
    expected = {
        "requests": f"SELECT count(), sum(cost_usd) FROM {raw}.requests_dedup WHERE workspace_id = %(w)s AND toDate(started_at) = %(d)s",
        "daily_spend": f"SELECT count(), sum(spend_usd) FROM {mart}.daily_spend WHERE workspace_id = %(w)s AND day = %(d)s",
        "project_spend": f"SELECT count(), sum(spend_usd) FROM {mart}.project_spend WHERE workspace_id = %(w)s AND day = %(d)s",
    }  # fmt: skip
    for name, query in expected.items():
        body = read(s3, f"{folder}/{name}.parquet")
        table = pq.read_table(io.BytesIO(body))
        rows, cost = client.query(query, parameters={"w": str(ours), "d": day}).result_rows[0]
        column = "cost_usd" if name == "requests" else "spend_usd"
        assert (table.num_rows, pc.sum(table[column]).as_py()) == (rows, cost), name
        assert set(table["workspace_id"].to_pylist()) == {str(ours)}, name
        assert manifest["files"][name] == {
            "key": f"{folder}/{name}.parquet", "rows": rows, "bytes": len(body),
            "sha256": hashlib.sha256(body).hexdigest(),
        }  # fmt: skip
    assert manifest["files"]["requests"]["rows"] == 3
    assert pc.sum(
        pq.read_table(io.BytesIO(read(s3, f"{folder}/requests.parquet")))["cost_usd"]
    ).as_py() == Decimal("3.875")

    page = person.client.get(f"/{slug}/settings/exports").text
    assert 'data-run="ok"' in page and f"Exported day {day}" in page

    # A re-run of the day rewrites the same keys, byte for byte: no duplicates.
    assert export(warehouse, postgres_url, cloud, day).success
    assert objects(s3) == first

    # A day without requests is still a day's folder: empty files with the tables' columns.
    quiet = day - timedelta(days=5)
    assert export(warehouse, postgres_url, cloud, quiet).success
    second = objects(s3)
    assert len(second) == 8 and all(k in second for k in first)
    empty = pq.read_table(io.BytesIO(read(s3, f"halton/daily/{ours}/{quiet}/requests.parquet")))
    assert empty.num_rows == 0 and "cost_usd" in empty.column_names

    # A wrong secret: the store's refusal, in its words, on the page and in the audit log.
    assert configure(person, s3, secret="not-the-secret").status_code == 303
    failed = export(warehouse, postgres_url, cloud, day, raise_on_error=False)
    assert not failed.success
    page = person.client.get(f"/{slug}/settings/exports").text
    assert 'data-run="failed"' in page and "SignatureDoesNotMatch" in page, page
    # Each run in the page's history, newest first: the refusal, then the three that worked.
    assert [w for w in re.findall(r'<tr data-works="(\w+)"', page)] == ["false", "true", "true", "true"]
    assert objects(s3) == second
    screenshot(chromium, cloud, person, f"/{slug}/settings/exports", artifacts_dir / "settings-exports.png")

    # Removing stops the exports; every step is in the audit log, and only in this workspace's.
    assert (
        person.post_form(f"/{slug}/settings/exports/remove", f"/{slug}/settings/exports").status_code == 303
    )
    assert "No export set up" in person.client.get(f"/{slug}/settings/exports").text
    with psycopg.connect(postgres_url) as conn:
        events = conn.execute(
            "SELECT workspace_id, event, details->>'works' FROM audit_events WHERE event LIKE 'export.%%'"
            " ORDER BY id"
        ).fetchall()
    assert [(e, w) for _, e, w in events] == [
        ("export.configured", None), ("export.run", "true"), ("export.run", "true"), ("export.run", "true"),
        ("export.configured", None), ("export.run", "false"), ("export.removed", None),
    ]  # fmt: skip
    assert {w for w, _, _ in events} == {ours}
    assert "export.run" in person.client.get(f"/{slug}/audit?kind=billing").text
    other.client.close()


@pytest.mark.parametrize("role", ["admin", "viewer"])
def test_only_owners_set_up_exports(cloud, person, postgres_url, role: str) -> None:
    with psycopg.connect(postgres_url) as conn:
        conn.execute(
            "UPDATE memberships SET role = %s WHERE workspace_id = (SELECT id FROM workspaces WHERE slug = %s)",
            (role, person.workspace_slug),
        )
    page = f"/{person.workspace_slug}/settings/exports"
    form = {"bucket": BUCKET, "access_key_id": "AKIA", "secret_access_key": "s"}
    assert person.post_form(page, page, form).status_code == 403
    assert "Only workspace owners" in person.client.get(page).text


def test_a_bad_bucket_name_is_named(cloud, person) -> None:
    page = f"/{person.workspace_slug}/settings/exports"
    answer = person.post_form(
        page, page, {"bucket": "Bad_Bucket", "access_key_id": "AKIA", "secret_access_key": "s"}
    )
    assert answer.status_code == 422 and "Bad_Bucket" in answer.text
