"""What a day's scheduled Parquet export costs: seconds and rows/s to read a busy day's raw requests from the
warehouse and write them as Parquet (zstd), the upload to an S3-compatible server, and Parquet bytes per row.

Loads the demo's requests (`halton_warehouse.demo.demo_data`, 14 days, seed 42) into a fresh embedded warehouse,
starts moto's S3 server on a free port, then reads, encodes and uploads the busiest day's requests as `halton_pipelines.day_export` does
(the requests file only: the marts are not built here, and their files are a few hundred rows a day).

    uv run python bench/parquet_export.py [--rows 700000]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import boto3
import httpx

from halton_meter.testing.processes import free_port, wait_for
from halton_pipelines.day_export import parquet_bytes, table_for_day
from halton_warehouse import Databases, connect
from halton_warehouse.demo.demo_data import Demo, DemoConfig
from halton_warehouse.demo.demo_warehouse import load_demo
from halton_warehouse.embedded import start_embedded
from halton_warehouse.migrate import migrate

PREFIX = "export_bench_"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=700_000)
    args = parser.parse_args()
    port = free_port()
    with (
        tempfile.TemporaryDirectory(prefix="halton-export-bench-") as tmp,
        start_embedded(Path(tmp) / "chdb", log_path=Path(tmp) / "server.log") as server,
    ):
        moto = subprocess.Popen(
            [Path(sys.executable).with_name("moto_server"), "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            url = f"http://127.0.0.1:{port}"
            wait_for(lambda: _up(url), timeout=60, what="moto's server")
            boto3.client(
                "s3",
                endpoint_url=url,
                region_name="us-east-1",
                aws_access_key_id="k",
                aws_secret_access_key="s",
            ).create_bucket(Bucket="bench")
            client, databases = connect(server.url), Databases.with_prefix(PREFIX)
            migrate(client, databases)
            until = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
            demo = Demo(DemoConfig(seed=42, requests=args.rows, days=14, until=until, chunk_size=100_000))
            load_demo(client, databases, demo)
            workspace = demo.workspace.workspace_id
            day, rows = client.query(
                f"SELECT toDate(started_at) AS d, count() FROM {databases.raw}.requests_dedup"
                " WHERE workspace_id = %(w)s GROUP BY d ORDER BY count() DESC LIMIT 1",
                parameters={"w": str(workspace)},
            ).result_rows[0]
            started = time.perf_counter()
            table = table_for_day(client, databases, "requests", str(workspace), day)
            read = time.perf_counter() - started
            body = parquet_bytes(table)
            encoded = time.perf_counter() - started - read
            s3 = boto3.client(
                "s3",
                endpoint_url=url,
                region_name="us-east-1",
                aws_access_key_id="k",
                aws_secret_access_key="s",
            )
            started = time.perf_counter()
            s3.put_object(Bucket="bench", Key=f"halton/{workspace}/{day}/requests.parquet", Body=body)
            uploaded = time.perf_counter() - started
        finally:
            moto.terminate()
            moto.wait(timeout=30)
    print(f"busiest day {day}: {rows:,} requests ({args.rows:,} over 14 days)")
    print(f"read from the warehouse as Arrow: {read:.2f} s ({rows / read:,.0f} rows/s)")
    print(f"Parquet (zstd) encode: {encoded:.2f} s; {len(body) / rows:.1f} bytes per request row")
    whole = read + encoded + uploaded
    print(
        f"upload to moto: {uploaded:.2f} s; requests file in all: {whole:.2f} s ({rows / whole:,.0f} rows/s)"
    )


def _up(url: str) -> bool:
    try:
        return httpx.get(f"{url}/moto-api/", timeout=2).status_code < 500
    except httpx.HTTPError:
        return False


if __name__ == "__main__":
    main()
