"""How much the embedded warehouse server costs over calling chDB in-process.

Run on demand (not a test): `uv run python bench/warehouse_roundtrip.py [--rows 1000000]`.

Measures, through the server (clickhouse-connect over HTTP) and in-process (chDB in this process, on
another data directory, since one process can open only one):
- `SELECT 1` round trips: median and p95, for clickhouse-connect and for the bare engine/HTTP call;
- a 1M-row insert into a realistic table (UUID, DateTime64, Decimal, LowCardinality String, UInt32):
  clickhouse-connect building Native blocks from Python columns, and the same Native bytes sent raw;
- a large result streamed through the server (`--large-gb`, 10 by default): time to its first byte, bytes
  per second, and the server process's resident memory sampled while it streams;
- 1M rows to a pandas DataFrame: server (clickhouse-connect `query_df`) against in-process.

`--only large,frame` runs just those parts.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import os
import platform
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

# chDB reads TZ when it loads; the server pins UTC, so the in-process side does too.
os.environ["TZ"] = "UTC"
time.tzset()

import clickhouse_connect  # noqa: E402
from chdb import _chdb  # noqa: E402

from halton_warehouse import connect  # noqa: E402
from halton_warehouse.embedded import start_embedded  # noqa: E402

TABLE_DDL = """
CREATE TABLE bench.calls (
    request_uid UUID,
    started_at DateTime64(3, 'UTC'),
    cost_usd Decimal(18, 9),
    provider LowCardinality(String),
    output_tokens UInt32
) ENGINE = MergeTree ORDER BY (provider, started_at, request_uid)
"""
COLUMNS = ["request_uid", "started_at", "cost_usd", "provider", "output_tokens"]
PROVIDERS = ("anthropic", "openai", "gemini", "xai")


def timings(call: Callable[[], object], iterations: int, warmup: int = 200) -> tuple[float, float]:
    """Median and p95 of `call`, in milliseconds."""
    for _ in range(warmup):
        call()
    samples = []
    for _ in range(iterations):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    samples.sort()
    return statistics.median(samples) * 1000, samples[int(len(samples) * 0.95)] * 1000


def python_columns(rows: int) -> list[list]:
    start = dt.datetime(2026, 11, 1)
    return [
        [uuid.uuid4() for _ in range(rows)],
        [start + dt.timedelta(milliseconds=37 * i) for i in range(rows)],
        [Decimal(i % 100_000) / Decimal(1_000_000) for i in range(rows)],
        [PROVIDERS[i % 4] for i in range(rows)],
        [i % 4000 for i in range(rows)],
    ]


def timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--iterations", type=int, default=2000, help="SELECT 1 round trips per path")
    parser.add_argument("--repeats", type=int, default=3, help="inserts per path (the median is shown)")
    parser.add_argument("--keep", action="store_true", help="keep the data directories and the server log")
    parser.add_argument("--large-gb", type=float, default=10.0, help="size of the streamed result, in GB")
    parser.add_argument("--only", default="select,insert,large,frame", help="comma-separated parts to run")
    args = parser.parse_args()
    parts = set(args.only.split(","))

    root = Path(tempfile.mkdtemp(prefix="warehouse-bench-"))
    print(f"machine: {machine()}")
    print(f"data: {root}\n")
    columns = python_columns(args.rows)

    # In-process: this process's one chDB path (not the server's), reached both bare and through
    # clickhouse-connect's chdb backend, which share it.
    local_path = root / "in-process"
    local = _chdb.connect(str(local_path))
    local_client = clickhouse_connect.get_client(dsn=f"chdb://{local_path}")

    with start_embedded(root / "server", log_path=root / "server.log") as server:
        http_client = connect(server.url)
        raw_http = http.client.HTTPConnection("127.0.0.1", server.port)
        login = {
            "X-ClickHouse-User": server.logins.admin.user,
            "X-ClickHouse-Key": server.logins.admin.password,
        }

        def http_select() -> bytes:
            raw_http.request("POST", "/", body=b"SELECT 1", headers=login)
            return raw_http.getresponse().read()

        if "large" in parts:
            large_result(server, login, args.large_gb)
        if "frame" in parts:
            to_data_frame(http_client, local, local_client, args.rows)
        if parts & {"select", "insert"}:
            print(f"SELECT 1 round trip, {args.iterations} runs (median / p95 ms)")
            results = {
                "server: clickhouse-connect query()": timings(
                    lambda: http_client.query("SELECT 1"), args.iterations
                ),
                "in-process: clickhouse-connect query()": timings(
                    lambda: local_client.query("SELECT 1"), args.iterations
                ),
                "server: bare HTTP POST (http.client)": timings(http_select, args.iterations),
                "in-process: bare chDB query()": timings(
                    lambda: local.query("SELECT 1", "TabSeparated"), args.iterations
                ),
            }
            for name, (median, p95) in results.items():
                print(f"  {name:42s} {median:6.2f} / {p95:6.2f}")

            for client in (http_client, local_client):
                client.command("CREATE DATABASE IF NOT EXISTS bench ENGINE = Atomic")
                client.command(TABLE_DDL)

            def insert(client) -> Callable[[], object]:
                return lambda: client.insert(
                    "bench.calls", columns, column_names=COLUMNS, column_oriented=True
                )

            # One untimed round each way first: the first insert pays for imports and caches. The
            # server's copy of the rows also becomes the pre-encoded Native stream below.
            for client in (local_client, http_client):
                client.command("TRUNCATE TABLE bench.calls")
                client.insert("bench.calls", columns, column_names=COLUMNS, column_oriented=True)

            print(f"\n{args.rows:,}-row insert, median of {args.repeats} (rows/s)")
            native = native_rows(server.port, login)
            rows, times = args.rows, args.repeats
            seconds = {
                "server: clickhouse-connect insert()": repeat(insert(http_client), http_client, rows, times),
                "in-process: clickhouse-connect insert()": repeat(
                    insert(local_client), local_client, rows, times
                ),
                "server: pre-encoded Native, chunked POST": repeat(
                    lambda: post_native(server.port, native, login), http_client, rows, times
                ),
                "in-process: pre-encoded Native, send_insert": repeat(
                    lambda: send_native(local, native), local_client, rows, times
                ),
            }
            for name, took in seconds.items():
                print(f"  {name:42s} {args.rows / took:12,.0f}")
            names = list(seconds)
            print(
                "  server time / in-process time: "
                f"clickhouse-connect {seconds[names[0]] / seconds[names[1]]:.2f}x, "
                f"pre-encoded Native {seconds[names[2]] / seconds[names[3]]:.2f}x (target: within 3x)"
            )
            print(f"  load average after the run: {os.getloadavg()[0]:.2f}")
        else:
            print(f"  load average after the run: {os.getloadavg()[0]:.2f}")
    local_client.close()
    local.close()
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)


def repeat(call: Callable[[], object], target, rows: int, times: int) -> float:
    """Median seconds of `call` inserting into an emptied table on `target`, checking every row arrived."""
    took = []
    for _ in range(times):
        target.command("TRUNCATE TABLE bench.calls")
        took.append(timed(call))
        stored = target.command("SELECT count() FROM bench.calls")
        if stored != rows:
            raise RuntimeError(f"the insert stored {stored} rows, not {rows}")
    return statistics.median(took)


def native_rows(port: int, login: dict[str, str]) -> bytes:
    """The rows the client inserted, as one Native stream read back from the server."""
    connection = http.client.HTTPConnection("127.0.0.1", port)
    connection.request("POST", "/", body=b"SELECT * FROM bench.calls FORMAT Native", headers=login)
    return connection.getresponse().read()


def post_native(port: int, native: bytes, login: dict[str, str], piece: int = 1 << 20) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port)

    def body():
        yield b"INSERT INTO bench.calls FORMAT Native\n"
        for start in range(0, len(native), piece):
            yield native[start : start + piece]

    connection.request("POST", "/", body=body(), headers=login, encode_chunked=True)
    response = connection.getresponse()
    if response.status != 200:
        raise RuntimeError(response.read().decode())
    response.read()


def server_rss(pid: int) -> int:
    """Resident memory of the server process, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def large_result(server, login: dict[str, str], gigabytes: float) -> None:
    """Stream `gigabytes` of TabSeparated rows through the server; sample its memory while it does."""
    row_bytes = 110  # a number (~9 digits), a tab, 100 x's, a newline: about 110 bytes a row
    rows = int(gigabytes * 1e9 / row_bytes)
    sql = f"SELECT number, repeat('x', 100) FROM numbers({rows})".encode()
    before = server_rss(server.pid)
    peak = [before]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.2):
            peak[0] = max(peak[0], server_rss(server.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=600)
    started = time.perf_counter()
    connection.request("POST", "/", body=sql, headers=login)
    response = connection.getresponse()
    first = response.read(1)
    first_byte = time.perf_counter() - started
    received = len(first)
    while piece := response.read(1 << 20):
        received += len(piece)
    took = time.perf_counter() - started
    done.set()
    sampler.join()
    connection.close()
    print(f"\nLarge result: {rows:,} rows, {received / 1e9:.2f} GB of TabSeparated through the server")
    print(f"  first byte after            {first_byte * 1000:8.1f} ms")
    print(f"  whole result in             {took:8.1f} s ({received / took / 1e6:,.0f} MB/s)")
    print(f"  server RSS before / peak    {before / 1e6:8.0f} / {peak[0] / 1e6:.0f} MB")


def to_data_frame(http_client, local, local_client, rows: int) -> None:
    """`rows` rows of four columns into a pandas DataFrame: through the server and in-process."""
    sql = (
        f"SELECT number AS id, toString(number) AS name, toDateTime('2026-01-01 00:00:00', 'UTC') + number AS at, "
        f"number / 7 AS ratio FROM numbers({rows})"
    )
    paths = {
        "server: clickhouse-connect query_df()": lambda: http_client.query_df(sql),
        "in-process: clickhouse-connect query_df()": lambda: local_client.query_df(sql),
        "in-process: bare chDB query_df()": lambda: local.query_df(sql),
    }
    print(f"\n{rows:,} rows to a DataFrame, median of 5 (s)")
    for name, call in paths.items():
        call()  # warm-up: imports and caches
        took = sorted(timed(call) for _ in range(5))
        print(f"  {name:42s} {took[2]:8.3f}")


def send_native(local, native: bytes, piece: int = 1 << 20) -> None:
    inserter = local.send_insert("INSERT INTO bench.calls", "Native")
    for start in range(0, len(native), piece):
        local.insert_append(inserter, native[start : start + piece])
    local.insert_done(inserter)


if __name__ == "__main__":
    main()
