"""Bytes per request row in the warehouse after compression: the capacity figure docs/production.md sizes
disks and shards with.

Loads the demo's requests (`halton_warehouse.demo.demo_data`, 90 days, seed 42: realistic models, projects, token
counts and prompt hashes) into `raw.requests` on a fresh embedded warehouse server, merges the parts
(`OPTIMIZE … FINAL`, as background merges do in time), then reads `system.parts` and `system.columns`.

    uv run python bench/warehouse_footprint.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from halton_warehouse import Databases, WarehouseSettings, connect
from halton_warehouse.demo.demo_data import Demo, DemoConfig
from halton_warehouse.demo.demo_warehouse import load_demo
from halton_warehouse.embedded import start_embedded
from halton_warehouse.migrate import migrate

PREFIX = "footprint_"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="halton-footprint-") as tmp,
        start_embedded(Path(tmp) / "chdb", log_path=Path(tmp) / "server.log") as server,
    ):
        settings = WarehouseSettings(clickhouse_url=server.url, clickhouse_database_prefix=PREFIX)
        client = connect(server.url)
        databases = Databases.with_prefix(PREFIX)
        migrate(client, databases)
        until = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        load_demo(client, settings.databases, Demo(DemoConfig(seed=42, requests=args.rows, days=90, until=until,
                                                                chunk_size=100_000)))  # fmt: skip
        client.command(f"OPTIMIZE TABLE {databases.raw}.requests FINAL")
        rows, compressed, uncompressed, parts = client.query(
            "SELECT sum(rows), sum(data_compressed_bytes), sum(data_uncompressed_bytes), count() FROM system.parts"
            f" WHERE database = '{databases.raw}' AND table = 'requests' AND active"
        ).result_rows[0]
        widest = client.query(
            "SELECT name, data_compressed_bytes FROM system.columns"
            f" WHERE database = '{databases.raw}' AND table = 'requests' ORDER BY data_compressed_bytes DESC LIMIT 5"
        ).result_rows
    print(f"raw.requests: {rows:,} rows in {parts} part(s)")
    print(f"compressed: {compressed / rows:.1f} bytes per row ({compressed / 2**20:.1f} MiB)")
    print(f"uncompressed: {uncompressed / rows:.1f} bytes per row (ratio {uncompressed / compressed:.1f}x)")
    print("widest columns (compressed bytes per row): " + ", ".join(f"{n} {b / rows:.1f}" for n, b in widest))


if __name__ == "__main__":
    main()
