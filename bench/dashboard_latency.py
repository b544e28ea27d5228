"""Dashboard latency on a big workspace: p50/p95 server time of the overview, a project page, the
reconciliation page, the clusters page and the captured requests (and JSON twins) with 10M — or, with
`--requests 100000000`, 100M — raw requests behind the marts, plus the build time and the marts' sizes.

The stack is the product's: an embedded warehouse server and PostgreSQL, the demo workspace's 10M requests
loaded straight into raw (90 days ending this hour; above 1M, the demo's first million generated and copied
inside the warehouse, each copy with its own request uids and prompts), the marts built by the Dagster assets (control-plane
snapshot, price card, dbt build), and the API as its own uvicorn process. The benchmark signs in like a browser
and times each GET on loopback, one at a time, after a warm-up; the time is the round trip, which on loopback
is the server's time plus well under a millisecond.

    uv run python bench/dashboard_latency.py [--requests 10000000] [--runs 40]
    uv run python bench/dashboard_latency.py --requests 100000000 --runs 20   # the 100M run (90 days)
    uv run python bench/dashboard_latency.py --requests 100000000 --data-dir /work/bench-100m \
        [--rebuild prompt_period_spend ...]   # keep the built demo; later runs reuse it, rebuilding those models

Target: p95 <= 250 ms per page on 2 cores (overview, project, reconciliation and clusters).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pgserver

from halton_meter.testing.processes import free_port, wait_for
from halton_pipelines import dbt_cli
from halton_pipelines.resources import HaltonDbtResource
from halton_warehouse.embedded import start_embedded

# The demo with its marts built needs the API and the pipelines both: it lives with the cross-component tests.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from demo_marts import DEMO_PASSWORD, BuiltDemo, build_demo, database_on, demo_of

CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')
# In --data-dir once the demo is built: its size, warehouse prefix and control-plane database, to reuse it.
KEPT_DEMO = "built-demo.json"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument(
        "--skip-recommendations",
        action="store_true",
        help="leave the optimisation checks out of the build (at 100M their repeats query times out)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="keep the stores here; when it already holds the built demo of --requests, skip the load and build",
    )
    parser.add_argument(
        "--rebuild",
        nargs="+",
        default=[],
        metavar="MODEL",
        help="with a kept demo: `dbt build --full-refresh --select MODEL...` before measuring (changed models)",
    )
    parser.add_argument(
        "--build-only", action="store_true", help="stop once the demo is built (with --data-dir)"
    )
    args = parser.parse_args()
    if args.data_dir is None and (args.rebuild or args.build_only):
        parser.error("--rebuild and --build-only need --data-dir (a demo to keep)")
    if args.data_dir is None:
        with tempfile.TemporaryDirectory(prefix="halton-bench-dash-") as tmp:
            run(Path(tmp), args)
    else:
        args.data_dir.mkdir(parents=True, exist_ok=True)
        run(args.data_dir.resolve(), args)


def run(home: Path, args: argparse.Namespace) -> None:
    kept = home / KEPT_DEMO
    pg = pgserver.get_server(home / "pg", cleanup_mode="stop")
    try:
        with start_embedded(home / "chdb", log_path=home / "warehouse.log") as warehouse:
            built = reuse(kept, warehouse.url, pg.get_uri(), args) if kept.exists() else None
            if built is None:
                built = build(warehouse, pg.get_uri(), args)
                kept.write_text(
                    json.dumps(
                        {
                            "requests": args.requests,
                            "prefix": built.prefix,
                            "database": built.database_url.split("?")[0].rsplit("/", 1)[1],
                        }
                    )
                )
            if args.build_only:
                return
            port = free_port()
            env = {
                **os.environ,
                "HALTON_ENV": "development",
                "HALTON_DATA_DIR": str(home / "cloud"),
                "HALTON_DATABASE_URL": built.database_url,
                "HALTON_CLICKHOUSE_URL": built.warehouse_url,
                "HALTON_CLICKHOUSE_DATABASE_PREFIX": built.prefix,
                "HALTON_SECRET_KEY": secrets.token_urlsafe(48),
            }
            with api_process(env, port, home / "api.log") as url:
                measure(url, built, args.runs, args.requests)
    finally:
        pg.cleanup()


def build(warehouse, postgres_server: str, args: argparse.Namespace) -> BuiltDemo:
    started = time.perf_counter()
    with peak_rss(warehouse.process.pid) as peak:
        built = build_demo(
            warehouse.url,
            postgres_server,
            requests=args.requests,
            recommendations=not args.skip_recommendations,
        )
    build_seconds = time.perf_counter() - started
    print(f"warehouse server's peak RSS during the load and build: {peak[0] / 2**30:.1f} GiB")
    print(f"demo of {args.requests:,} requests loaded and marts built in {build_seconds:.0f} s")
    steps = {k: v for k, v in built.timings.items() if not k.startswith("model ")}
    print("  " + ", ".join(f"{k} {v:.0f} s" for k, v in steps.items()))
    models = sorted(((v, k) for k, v in built.timings.items() if k.startswith("model ")), reverse=True)
    print("  slowest dbt models: " + ", ".join(f"{k[6:]} {v:.1f} s" for v, k in models[:8]), flush=True)
    return built


def reuse(kept: Path, warehouse_url: str, postgres_server: str, args: argparse.Namespace) -> BuiltDemo:
    """The demo an earlier run built in the kept stores, its `--rebuild` models built again from raw."""
    facts = json.loads(kept.read_text())
    if facts["requests"] != args.requests:
        raise SystemExit(
            f"--data-dir {kept.parent} holds a demo of {facts['requests']:,} requests, not {args.requests:,}"
        )
    database_url = database_on(postgres_server, facts["database"])
    built = BuiltDemo(warehouse_url, facts["prefix"], database_url, demo_of(args.requests))
    print(f"reusing the demo of {args.requests:,} requests kept in {kept.parent}", flush=True)
    if args.rebuild:
        dbt = HaltonDbtResource(
            clickhouse_url=warehouse_url,
            database_prefix=built.prefix,
            as_of=datetime.now(UTC).date().isoformat(),
        )
        command = [
            dbt_cli.dbt_executable(), *dbt.build_args(), "--full-refresh", "--select", *args.rebuild,
            "--project-dir", dbt.project_dir, "--profiles-dir", str(dbt.profiles_dir()),
        ]  # fmt: skip
        started = time.perf_counter()
        result = subprocess.run(
            dbt_cli.with_vars(command, dbt.variables()),
            capture_output=True,
            text=True,
            env={**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"},
        )
        if result.returncode != 0:
            raise SystemExit(f"dbt build of {' '.join(args.rebuild)} failed:\n{result.stdout[-6000:]}")
        print(
            f"rebuilt {' '.join(args.rebuild)} (full refresh) in {time.perf_counter() - started:.0f} s; "
            f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
            flush=True,
        )
    return built


@contextmanager
def peak_rss(pid: int) -> Iterator[list[int]]:
    """The largest resident set of process `pid` seen (every second) while the block runs, in bytes: chDB
    runs inside the warehouse server, so this is the warehouse's memory."""
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(1.0):
            try:
                pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
            except (OSError, IndexError, ValueError):
                return
            peak[0] = max(peak[0], pages * os.sysconf("SC_PAGE_SIZE"))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield peak
    finally:
        done.set()
        sampler.join()


@contextmanager
def api_process(env: dict[str, str], port: int, log: Path) -> Iterator[str]:
    """The API as its own process, as production runs it (`halton-cloud serve`); yields its URL."""
    command = [sys.executable, "-m", "halton_api", "serve", "--host", "127.0.0.1", "--port", str(port),
               "--log-level", "warning"]  # fmt: skip
    with log.open("ab") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _healthy(url), timeout=60, what=f"the API on {url} (log: {log})")
        yield url
    finally:
        process.terminate()
        process.wait(30)


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def measure(base: str, built, runs: int, raw_rows: int) -> None:
    client = httpx.Client(base_url=base, timeout=60)
    token = CSRF_FIELD.search(client.get("/signin").text).group(1)
    client.post("/signin", data={"csrf_token": token, "email": built.owner_email, "password": DEMO_PASSWORD})
    slug = built.slug
    (top_project,) = built.query(
        "SELECT project FROM {marts}.daily_spend WHERE workspace_id = '{ws}' GROUP BY project "
        "ORDER BY sum(spend_usd) DESC LIMIT 1"
    )[0]
    marts = {
        table: built.scalar(f"SELECT count() FROM {{marts}}.{table}")
        for table in (
            "daily_spend",
            "hourly_spend",
            "requests",
            "reconciliation_daily",
            "prompt_clusters",
            "prompt_daily_spend",
            "prompt_period_spend",
        )
    }
    # On-disk size of each database (raw and marts): what the 100M question is about besides time.
    sizes = built.query(
        "SELECT database, table, sum(rows), sum(bytes_on_disk) FROM system.parts WHERE active"
        " AND database LIKE %(p)s GROUP BY database, table HAVING sum(rows) > 0 ORDER BY sum(bytes_on_disk) DESC",
        p=built.prefix + "%",
    )
    targets = [
        ("overview (30 days)", f"/{slug}/overview"),
        ("overview JSON", f"/v1/{slug}/overview"),
        ("overview, last 24 hours", f"/{slug}/overview?range=24h"),
        ("project page", f"/{slug}/projects/{top_project}"),
        ("project JSON", f"/v1/{slug}/projects/{top_project}/view"),
        ("project, one provider, 7 days", f"/{slug}/projects/{top_project}?range=7d&provider=anthropic"),
        ("reconciliation", f"/{slug}/reconciliation"),
        ("reconciliation JSON", f"/v1/{slug}/reconciliation"),
        ("clusters (30 days)", f"/{slug}/clusters"),
        ("clusters JSON", f"/v1/{slug}/clusters"),
        # A rail filter: the days of prompt_daily_spend summed, not the period's sums.
        ("clusters, one provider", f"/{slug}/clusters?provider=anthropic"),
        ("captured requests (30 days)", f"/{slug}/audit/requests"),
    ]
    print(f"\nmarts rows: {', '.join(f'{k} {v:,}' for k, v in marts.items())}")
    for database, table, rows, size in sizes:
        print(
            f"  {database.removeprefix(built.prefix)}.{table}: {int(rows):,} rows, {int(size) / 2**20:,.1f} MiB on disk"
        )
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    print(f"| page ({raw_rows:,} raw requests) | p50 | p95 | max | bytes |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, path in targets:
        for _ in range(3):  # warm-up: connections, the warehouse's caches
            client.get(path)
        times = []
        size = 0
        for _ in range(runs):
            started = time.perf_counter()
            response = client.get(path)
            times.append((time.perf_counter() - started) * 1000)
            if response.status_code != 200:
                raise SystemExit(f"{path}: {response.status_code} {response.text[:300]}")
            size = len(response.content)
        print(
            f"| {name} | {statistics.median(times):.0f} ms | {percentile(times, 0.95):.0f} ms | "
            f"{max(times):.0f} ms | {size:,} |",
            flush=True,
        )
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
