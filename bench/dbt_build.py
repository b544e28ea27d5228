"""dbt build time on the embedded warehouse: full builds at 1M and 10M raw request rows, and the incremental
build after one 10k-row batch (what the ingestion sensor triggers).

For each size: a fresh embedded warehouse server (its own process, as in production), the demo data loaded
straight into raw (requests, price card, billed lines, control-plane copy), then:

1. `dbt build --full-refresh` (every model and its data tests, as Dagster builds), timed; then `dbt run`
   alone, timed;
2. a 10k-row batch (99% from the last hour, 1% late rows from three days back) inserted as the API would,
   then `dbt build` of the whole project (incremental: only the days that received rows are rebuilt),
   timed; after another batch, the build the ingestion sensor's Dagster job runs (everything but the two
   hourly all-history marts), timed; after a third, `dbt run` alone, timed.

dbt runs as Dagster runs it: the `dbt` CLI in a subprocess, profile generated from the warehouse settings.

    uv run python bench/dbt_build.py [--sizes 1000000 10000000] [--record]

`--record` writes the figures into bench/RESULTS.md under "## dbt build (issue 6)" (other sections kept).
Targets (2 cores): incremental build <= 15 s; full build at 10M <= 3 min.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from halton_pipelines import dbt_cli
from halton_warehouse import Databases, WarehouseSettings, connect
from halton_warehouse.demo.demo_data import Demo, DemoConfig
from halton_warehouse.demo.demo_warehouse import insert_requests, load_demo
from halton_warehouse.embedded import start_embedded
from halton_warehouse.migrate import migrate

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "RESULTS.md"
SECTION = "## dbt build (issue 6)"
UNTIL = datetime(2026, 11, 20, tzinfo=UTC)
PREFIX = "bench_"
# As Dagster builds (unit tests run in CI, not on every scheduled build).
BUILD = ("build", "--exclude-resource-type", "unit_test")
# What the ingestion sensor's job leaves to the hourly job (halton_pipelines.defs.dbt.HISTORY_MARTS).
HISTORY_MARTS = ("prompt_clusters", "model_usage_30d")


def dbt(settings: WarehouseSettings, profiles: Path, *args: str) -> float:
    """Run the dbt CLI as Dagster does; returns wall seconds (raises when dbt fails)."""
    command = [
        str(Path(sys.executable).with_name("dbt")), *args, "--project-dir", str(dbt_cli.project_dir()),
        "--profiles-dir", str(profiles),
    ]  # fmt: skip
    command = dbt_cli.with_vars(command, dbt_cli.dbt_vars(settings, as_of=UNTIL.date().isoformat()))
    started = time.perf_counter()
    result = subprocess.run(
        command, capture_output=True, text=True, env={**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    )
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"dbt {' '.join(args)} failed:\n{result.stdout[-6000:]}")
    summary = re.findall(r"Done\. PASS=(\d+) WARN=(\d+) ERROR=(\d+)", result.stdout)
    print(f"    dbt {' '.join(args)}: {elapsed:.1f} s {summary[-1] if summary else ''}", flush=True)
    return elapsed


def batch(demo: Demo, seed: int, rows: int = 10_000) -> object:
    """A 10k-row batch as a meter sends one: fresh request ids, 99% from the last hour, 1% three days late."""
    fresh = Demo(DemoConfig(seed=seed, requests=rows, days=14, until=UNTIL, chunk_size=rows))
    chunk = next(fresh.chunks())
    rng = np.random.default_rng(seed)
    end = int(UNTIL.timestamp() * 1000)
    offsets = rng.integers(0, 3_600_000, rows)
    late = rng.random(rows) < 0.01
    chunk.started_ms = np.where(late, end - 3 * 86_400_000 - offsets, end - offsets)
    fresh.__dict__["workspace"] = demo.workspace  # same workspace and devices as the loaded demo
    fresh.__dict__["devices"] = demo.devices
    return fresh, chunk


def run_size(size: int, work: Path) -> dict[str, float]:
    print(f"{size:,} rows", flush=True)
    data = work / f"chdb-{size}"
    with start_embedded(data, log_path=work / f"server-{size}.log") as server:
        settings = WarehouseSettings(clickhouse_url=server.url, clickhouse_database_prefix=PREFIX)
        client = connect(server.url)
        migrate(client, Databases.with_prefix(PREFIX))
        demo = Demo(DemoConfig(seed=42, requests=size, days=90, until=UNTIL, chunk_size=100_000))
        started = time.perf_counter()
        load_demo(client, settings.databases, demo)
        load = time.perf_counter() - started
        print(f"    load: {load:.1f} s", flush=True)
        profiles = dbt_cli.write_profiles(settings, work / f"profiles-{size}")
        dbt(settings, profiles, "parse")
        figures = {"rows": size, "load_s": load}
        figures["full_build_s"] = dbt(settings, profiles, *BUILD, "--full-refresh")
        figures["full_run_s"] = dbt(settings, profiles, "run", "--full-refresh")
        for label, command, seed in (
            ("incremental_build_s", BUILD, 7001),
            ("ingestion_build_s", (*BUILD, "--exclude", *HISTORY_MARTS), 7002),
            ("incremental_run_s", ("run",), 7003),
        ):
            fresh, chunk = batch(demo, seed)
            insert_requests(client, settings.databases, fresh, chunk, batch_id=uuid.uuid4(), arrived_now=True)
            figures[label] = dbt(settings, profiles, *command)
        figures["unit_tests_s"] = dbt(settings, profiles, "test", "--select", "test_type:unit")
        count = client.query(f"SELECT count() FROM {PREFIX}staging.int_requests_priced").result_rows[0][0]
        assert count == size + 30_000, count
        return figures


def machine() -> str:
    model = "unknown"
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        model = re.search(r"Model name:\s*(.+)", lscpu).group(1).strip()  # type: ignore[union-attr]
    except (OSError, AttributeError):
        pass
    return f"{model} (`lscpu` model name), {os.cpu_count()} cores, Python {platform.python_version()}"


def record(results: list[dict[str, float]]) -> None:
    lines = [
        SECTION,
        "",
        "`uv run python bench/dbt_build.py --record`: a fresh embedded warehouse server per size, the demo data",
        "(`halton_warehouse.demo.demo_data`, 90 days, seed 42) loaded straight into raw, then dbt as Dagster runs it",
        "(the `dbt` CLI in a subprocess, one thread per core). Full = `--full-refresh` of every model; build = models and",
        "their 79 data tests, as the Dagster asset runs it (the 9 unit tests test SQL logic, not data: CI runs",
        "them, in the time shown last); incremental = after one 10k-row batch (99% from the last hour, 1% three",
        "days late): only the days that received rows are rebuilt, and the tests of the two incremental models",
        'check the rows the run rebuilt; "sensor job" is the build Dagster\'s ingestion sensor runs (all but the',
        "hourly `prompt_clusters` and `model_usage_30d`). Times are wall clock and include dbt's own start",
        "(about 4-5 s: Python, adapter, manifest).",
        "",
        f'Machine: {machine()}. Recorded {datetime.now(UTC):%Y-%m-%d}. "Load raw" includes generating the rows',
        "(numpy) and Arrow inserts of 100k rows over HTTP.",
        "",
        "| raw rows | load raw | full build | full run | incremental build | sensor job build | incremental run "
        "| unit tests |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        lines.append(
            f"| {int(r['rows']):,} | {r['load_s']:.0f} s | {r['full_build_s']:.0f} s | {r['full_run_s']:.0f} s "
            f"| {r['incremental_build_s']:.1f} s | {r['ingestion_build_s']:.1f} s | {r['incremental_run_s']:.1f} s "
            f"| {r['unit_tests_s']:.0f} s |"
        )
    lines += ["", "Targets: incremental build <= 15 s; full build at 10M <= 3 min.", ""]
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n\n"
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.S | re.M)
    section = "\n".join(lines) + "\n"
    text = pattern.sub(section, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section
    RESULTS.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--record", action="store_true", help="write the figures into bench/RESULTS.md")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="halton-bench-dbt-") as scratch:
        for size in args.sizes:
            results.append(run_size(size, Path(scratch)))
            print(results[-1], flush=True)
    if args.record:
        record(results)


if __name__ == "__main__":
    main()
