"""Ingestion benchmark: rows/s and batch latency of `POST /v1/requests/batch` into the embedded warehouse.

Starts its own stack the way a user does (`halton-cloud up` in a temporary data dir: embedded warehouse
server, embedded PostgreSQL, uvicorn), pairs a few devices, then sends 1,000-row batches of fresh rows
from 1, 4 and 16 concurrent clients, each a machine sending its calls in order (`MeterClocks`: a call
every 10 ms, consecutive batches cover consecutive seconds). Whole requests are built before the clock
starts and sent over keep-alive connections by a minimal client, so the figures are the server's, not the
load generator's. Other work on the machine skews rows/s and latency, not CPU per row: each run prints the
load average, and `--repeat` runs every level again.

    uv run python bench/ingest.py [--batches 48] [--rows 1000] [--gzip] [--repeat 3] [--in-process-warehouse]
                                  [--api-processes 2 [3]]

`--api-processes N…` measures the same levels with one API process, then with N processes on the one port
(`halton-cloud up --workers N`), each on a fresh stack, in the same run: the figures sit side by side.

`--in-process-warehouse` points the API at chDB in its own process (`HALTON_CLICKHOUSE_URL=chdb://…`)
instead of the embedded warehouse server: the same engine without the HTTP hop, for comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psutil
import psycopg
from psycopg.rows import dict_row

from halton_api.store import devices, workspaces
from halton_api.store.audit import Actor
from halton_api.store.users import create_user
from halton_meter.testing.processes import free_port

CONCURRENCY = (1, 4, 16)


def start_stack(
    data_dir: Path, in_process_warehouse: bool = False, workers: int = 1
) -> tuple[subprocess.Popen[bytes], str]:
    port, warehouse_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HALTON_")}
    if in_process_warehouse:
        env["HALTON_CLICKHOUSE_URL"] = f"chdb://{data_dir / 'chdb'}"
    log = open(data_dir / "halton-cloud.log", "wb")  # noqa: SIM115 (lives as long as the process)
    process = subprocess.Popen(
        [sys.executable, "-m", "halton_api", "up", "--data-dir", str(data_dir), "--port", str(port),
         "--warehouse-port", str(warehouse_port), "--workers", str(workers)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"halton-cloud up exited early; see {data_dir / 'halton-cloud.log'}")
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return process, base
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    process.kill()
    raise SystemExit("halton-cloud up did not become healthy within 120 s")


async def pair_devices(database_url: str, count: int) -> list[tuple[str, str]]:
    """(machine_id, token) for `count` devices in one workspace."""
    async with await psycopg.AsyncConnection.connect(database_url, row_factory=dict_row) as conn:
        user = await create_user(
            conn, email=f"bench-{uuid.uuid4().hex[:6]}@example.com", name="", password_hash="x"
        )
        workspace = await workspaces.create_workspace(conn, name="Bench", owner=user)
        paired = []
        for i in range(count):
            created = await devices.create_device(
                conn,
                workspace_id=workspace.id,
                machine_id=f"bench-{i}",
                hostname=f"bench-{i}.local",
                paired_by=user,
                actor=Actor.system("bench"),
            )
            paired.append((created.device.machine_id, created.token))
        await conn.commit()
        return paired


# A busy machine: a call every 10 ms, so a 1,000-row batch covers 10 seconds.
CALL_SPACING = timedelta(milliseconds=10)


class MeterClocks:
    """When each machine's next call started. A meter sends its calls in order, each once: its batches
    follow one another in time (a batch never covers minutes an earlier one covered), as here. Clocks start
    six hours back, enough for every level of `--repeat 3` to stay in the past."""

    def __init__(self) -> None:
        self._next: dict[str, datetime] = {}

    def take(self, machine_id: str, rows: int) -> datetime:
        start = self._next.get(machine_id) or datetime.now(UTC) - timedelta(hours=6)
        self._next[machine_id] = start + rows * CALL_SPACING
        return start


def make_body(machine_id: str, rows: int, compress: bool, start: datetime) -> bytes:
    body = {
        "schema_version": 1,
        "batch_id": str(uuid.uuid4()),
        "rows": [
            {
                "request_uid": str(uuid.uuid4()),
                "machine_id": machine_id,
                "started_at": (start + i * CALL_SPACING).isoformat(),
                "ended_at": (start + i * CALL_SPACING + timedelta(milliseconds=900)).isoformat(),
                "provider": "anthropic",
                "model_requested": "claude-sonnet-4-5",
                "model_served": "claude-sonnet-4-5-20250929",
                "endpoint": "/v1/messages",
                "status_code": 200,
                "streamed": True,
                "input_tokens": 1800,
                "output_tokens": 420,
                "cache_read_tokens": 1200,
                "cost_usd": "0.009630000",
                "price_card": "2026-05-01",
                "project": f"acme/app-{i % 7}",
                "attribution_tier": "header",
                "prompt_hash": uuid.uuid4().hex,
                "provider_request_id": f"msg_{uuid.uuid4().hex[:24]}",
                "latency_ms": 900,
                "ttfb_ms": 210,
            }
            for i in range(rows)
        ],
    }
    raw = json.dumps(body).encode()
    return gzip.compress(raw, compresslevel=5) if compress else raw


def cpu_seconds(pid: int, data_dir: Path) -> dict[str, float]:
    """CPU time used so far by the API process, the warehouse server and PostgreSQL (all its processes)."""
    api = psutil.Process(pid)
    found = {"api": 0.0, "warehouse": 0.0, "postgres": 0.0}
    for process in [api, *api.children(recursive=True), *_postgres_processes(data_dir)]:
        try:
            times = process.cpu_times()
            cmdline = " ".join(process.cmdline())
        except psutil.NoSuchProcess:
            continue
        kind = (
            "warehouse"
            if "halton_warehouse.server" in cmdline
            else "postgres"
            if "postgres" in cmdline
            else "api"
        )
        found[kind] += times.user + times.system
    return found


def _postgres_processes(data_dir: Path) -> list[psutil.Process]:
    # pg_ctl daemonises the postmaster: find it by its pid file, then its backends.
    postmaster = psutil.Process(int((data_dir / "postgres" / "postmaster.pid").read_text().split()[0]))
    return [postmaster, *postmaster.children(recursive=True)]


class Connection:
    """A keep-alive HTTP/1.1 connection that sends prepared requests: the load generator shares the two
    cores with the server, so it does as little as it can (httpx cost ~3 ms of CPU per 1,000 rows here)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, base: str) -> Connection:
        host, port = base.removeprefix("http://").split(":")
        return cls(*await asyncio.open_connection(host, int(port)))

    async def send(self, request: bytes) -> tuple[int, bytes]:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
        if length is None:  # every answer of this endpoint has a length; anything else is not worth parsing
            raise SystemExit(f"answer without Content-Length: {head[:300]!r}")
        return status, await self.reader.readexactly(int(length.group(1)))

    def close(self) -> None:
        self.writer.close()


def prepare(base: str, token: str, body: bytes, compress: bool) -> bytes:
    """The whole `POST /v1/requests/batch` request, bytes ready to write."""
    lines = [
        "POST /v1/requests/batch HTTP/1.1",
        f"Host: {base.removeprefix('http://')}",
        f"Authorization: Bearer {token}",
        "Content-Type: application/json",
        *(["Content-Encoding: gzip"] if compress else []),
        f"Content-Length: {len(body)}",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def run_level(
    base: str,
    paired: list[tuple[str, str]],
    clocks: MeterClocks,
    clients: int,
    batches_per_client: int,
    rows: int,
    compress: bool,
) -> dict[str, float]:
    work = [
        [
            prepare(base, token, make_body(machine, rows, compress, clocks.take(machine, rows)), compress)
            for _ in range(batches_per_client)
        ]
        for machine, token in paired[:clients]
    ]
    latencies: list[float] = []

    async def client(requests: list[bytes]) -> None:
        connection = await Connection.open(base)
        try:
            for request in requests:
                started = time.perf_counter()
                status, answer = await connection.send(request)
                latencies.append(time.perf_counter() - started)
                if status != 200 or json.loads(answer)["accepted"] != rows:
                    raise SystemExit(f"batch refused: {status} {answer[:300]!r}")
        finally:
            connection.close()

    started = time.perf_counter()
    client_cpu = time.process_time()
    await asyncio.gather(*(client(requests) for requests in work))
    elapsed = time.perf_counter() - started
    client_cpu = time.process_time() - client_cpu
    ordered = sorted(latencies)
    return {
        "clients": clients,
        "batches": len(latencies),
        "client_ms_per_k": client_cpu * 1000 / (len(latencies) * rows / 1000),
        "rows_per_s": len(latencies) * rows / elapsed,
        "p50_ms": statistics.median(ordered) * 1000,
        "p95_ms": ordered[max(0, round(0.95 * len(ordered)) - 1)] * 1000,
        "max_ms": ordered[-1] * 1000,
    }


def machine() -> str:
    try:
        output = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        model = re.search(r"Model name:\s*(.+)", output).group(1).strip()  # type: ignore[union-attr]
    except (OSError, subprocess.CalledProcessError, AttributeError):
        model = platform.processor() or "unknown CPU"
    return f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1000, help="rows per batch")
    parser.add_argument(
        "--batches", type=int, default=48, help="batches per concurrency level (at least 8 per client)"
    )
    parser.add_argument("--gzip", action="store_true", help="send gzip-compressed bodies")
    parser.add_argument("--repeat", type=int, default=1, help="run every concurrency level this many times")
    parser.add_argument(
        "--in-process-warehouse",
        action="store_true",
        help="chDB inside the API process instead of the embedded warehouse server (for comparison)",
    )
    parser.add_argument(
        "--api-processes",
        type=int,
        nargs="+",
        default=[],
        metavar="N",
        help="also measure with N API processes (uvicorn workers), after one process, in the same run",
    )
    args = parser.parse_args()
    if args.in_process_warehouse and args.api_processes:
        parser.error("--in-process-warehouse holds chDB in the API process: it cannot have several")

    results = []
    for workers in [1, *args.api_processes]:
        for result in measure(args, workers):
            results.append({**result, "processes": workers})

    print(f"machine: {machine()}")
    stack = "API with chDB in-process" if args.in_process_warehouse else "embedded"
    print(
        f"batch: {args.rows} rows, {'gzip' if args.gzip else 'plain JSON'}; stack: halton-cloud up ({stack})"
    )
    print(
        "| API processes | concurrent clients | batches | rows/s | p50 batch latency | p95 batch latency | max "
        "| CPU ms per 1k rows: API / warehouse / PostgreSQL / bench client | load average |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        print(
            f"| {r['processes']} | {r['clients']} | {r['batches']} | {r['rows_per_s']:,.0f} | {r['p50_ms']:.0f} ms | "
            f"{r['p95_ms']:.0f} ms | {r['max_ms']:.0f} ms | {r['api_ms_per_k']:.1f} / {r['warehouse_ms_per_k']:.1f}"
            f" / {r['postgres_ms_per_k']:.1f} / {r['client_ms_per_k']:.1f} | {r['load']} |"
        )


def measure(args: argparse.Namespace, workers: int) -> list[dict]:
    """Every concurrency level (`--repeat` times) on a fresh stack with `workers` API processes."""
    with tempfile.TemporaryDirectory(prefix="halton-bench-") as tmp:
        data_dir = Path(tmp)
        process, base = start_stack(data_dir, args.in_process_warehouse, workers)
        try:
            database_url = f"postgresql://postgres:@/postgres?host={data_dir / 'postgres'}"
            paired = asyncio.run(pair_devices(database_url, max(CONCURRENCY)))
            # Warm up: connections (each process's), caches, the first parts.
            clocks = MeterClocks()
            asyncio.run(run_level(base, paired, clocks, 2 * workers, 2, args.rows, args.gzip))
            results = []
            for _ in range(args.repeat):
                for clients in CONCURRENCY:
                    load_before = os.getloadavg()[0]
                    before = cpu_seconds(process.pid, data_dir)
                    per_client = max(8, args.batches // clients)
                    result = asyncio.run(
                        run_level(base, paired, clocks, clients, per_client, args.rows, args.gzip)
                    )
                    after = cpu_seconds(process.pid, data_dir)
                    rows_sent = result["batches"] * args.rows
                    for kind in before:  # CPU milliseconds per 1,000 rows, by process
                        result[f"{kind}_ms_per_k"] = (after[kind] - before[kind]) * 1000 / (rows_sent / 1000)
                    result["load"] = f"{load_before:.1f} to {os.getloadavg()[0]:.1f}"
                    results.append(result)
            return results
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)


if __name__ == "__main__":
    main()
