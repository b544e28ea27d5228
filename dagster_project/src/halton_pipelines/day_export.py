"""One workspace's day as Parquet files in its S3-compatible bucket, with a manifest.

The files of a day are `<prefix>/<workspace_id>/<YYYY-MM-DD>/<table>.parquet`, one per exported table, and
`manifest.json` beside them with each file's row count, size and SHA-256. The keys depend only on the
destination, workspace and day, so a re-run for the same day overwrites the same objects: never a duplicate.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from datetime import date

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from clickhouse_connect.driver.client import Client

from halton_pipelines.export_destination_reader import ExportDestination
from halton_warehouse import Databases

# Exported tables: where each lives, how its day is selected and the order that makes a file reproducible.
TABLES = {
    "requests": ("raw", "requests_dedup", "toDate(started_at)", "started_at, request_uid"),
    "daily_spend": ("marts", "daily_spend", "day", "provider, model, project, device_id"),
    "project_spend": ("marts", "project_spend", "day", "project"),
}
# Upload failures are reported on the settings page: fail within a minute rather than retry for long.
_S3_CONFIG = Config(connect_timeout=10, read_timeout=30, retries={"max_attempts": 2, "mode": "standard"})


class ExportError(RuntimeError):
    """A day could not be written to the destination (the S3 store's own words)."""


@dataclass(frozen=True)
class ExportedFile:
    key: str
    rows: int
    size: int
    sha256: str


def _select(client: Client, table: str) -> str:
    """Every column, UUIDs as their text form (Arrow has no UUID type: readers get the string they know)."""
    columns = client.query(f"DESCRIBE TABLE {table}").result_rows
    return ", ".join(
        f"toString(`{name}`) AS `{name}`" if "UUID" in kind and "Array" not in kind else f"`{name}`"
        for name, kind, *_ in columns
    )


def table_for_day(client: Client, databases: Databases, name: str, workspace_id: str, day: date) -> pa.Table:
    database, table, day_expression, order = TABLES[name]
    qualified = f"{getattr(databases, database)}.{table}"
    # Arrow's stream format: the embedded server's one-piece Arrow file answer for a busy day (tens of MB) does
    # not parse (pyarrow: "Invalid IPC file"), its stream does; and the stream carries the schema even for a
    # day without rows, so an empty day is still a file with the table's columns.
    stream = client.raw_stream(
        f"SELECT {_select(client, qualified)} FROM {qualified}"
        f" WHERE workspace_id = %(w)s AND {day_expression} = %(d)s ORDER BY {order}",
        parameters={"w": workspace_id, "d": day},
        settings={"output_format_arrow_string_as_string": 1},
        fmt="ArrowStream",
    )
    try:
        return pa.ipc.open_stream(stream).read_all()
    finally:
        stream.close()


def parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def s3_client(destination: ExportDestination):
    return boto3.client(
        "s3",
        endpoint_url=destination.endpoint_url or None,
        region_name=destination.region or "us-east-1",
        aws_access_key_id=destination.access_key_id,
        aws_secret_access_key=destination.secret_access_key,
        config=_S3_CONFIG,
    )


def export_day(
    client: Client, databases: Databases, destination: ExportDestination, day: date
) -> list[ExportedFile]:
    """Write the day's tables and manifest; the files written (the manifest last, so it names only files
    that are there)."""
    s3 = s3_client(destination)
    written = []
    try:
        for name in TABLES:
            table = table_for_day(client, databases, name, str(destination.workspace_id), day)
            body = parquet_bytes(table)
            key = destination.key(day, f"{name}.parquet")
            s3.put_object(
                Bucket=destination.bucket, Key=key, Body=body, ContentType="application/vnd.apache.parquet"
            )
            written.append(ExportedFile(key, table.num_rows, len(body), hashlib.sha256(body).hexdigest()))
        manifest = {
            "workspace_id": str(destination.workspace_id),
            "day": day.isoformat(),
            "files": {
                name: {"key": f.key, "rows": f.rows, "bytes": f.size, "sha256": f.sha256}
                for name, f in zip(TABLES, written, strict=True)
            },
        }
        s3.put_object(
            Bucket=destination.bucket, Key=destination.key(day, "manifest.json"),
            Body=json.dumps(manifest, indent=2, sort_keys=True).encode(), ContentType="application/json",
        )  # fmt: skip
    except (ClientError, BotoCoreError) as error:
        raise ExportError(f"s3://{destination.bucket}: {error}") from error
    return written
