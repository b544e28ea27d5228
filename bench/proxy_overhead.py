"""What the meter adds to a call: latency (p50/p99), time to first byte of a stream, throughput.

Three processes, as on a laptop: the fake OpenAI server (``halton_meter.testing.fake_providers``, HTTPS),
the real meter daemon (``halton-meter start --foreground``, default settings except the upstream and
port), and this script as the client. Each figure compares a call through the meter with the same
call made straight to the fake server over a kept-alive connection:

* non-streamed chat completion, sequential, in base-URL mode and in proxy mode (TLS interception);
* time to the first body byte of a streamed chat completion, both modes;
* calls/s with 50 concurrent clients in base-URL mode, then the daemon is stopped (it flushes) and
  the rows in SQLite are counted against the calls made: rows lost must be 0.

Run: ``uv run python bench/proxy_overhead.py`` (about a minute). Targets: added p50 <= 2 ms,
p99 <= 10 ms, TTFB <= 3 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sqlite3
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from halton_meter.testing.fake_providers import fake_providers
from halton_meter.testing.processes import free_port

ROOT = Path(__file__).resolve().parents[1]
BODY = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Say hi"}]}
STREAM_BODY = {**BODY, "stream": True, "stream_options": {"include_usage": True}}


def serve_fakes(folder: Path) -> None:
    """Child process: run the fake providers until stdin closes."""
    with fake_providers(folder) as fakes:
        print(json.dumps({"openai": fakes.openai.url, "ca": str(fakes.pki.ca_path)}), flush=True)
        sys.stdin.read()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def interleaved(
    fns: dict[str, Callable[[], float | None]], n: int, warmup: int, *, measure_returned: bool = False
) -> dict[str, list[float]]:
    """Time ``n`` calls of each function, taking turns; a function may return its own figure (ms)."""
    samples: dict[str, list[float]] = {label: [] for label in fns}
    for i in range(warmup + n):
        for label, fn in fns.items():
            start = time.perf_counter()
            returned = fn()
            elapsed = (time.perf_counter() - start) * 1000
            if i >= warmup:
                samples[label].append(returned if measure_returned else elapsed)
    return samples


def plain_call(client: httpx.Client, url: str) -> Callable[[], None]:
    def call() -> None:
        response = client.post(url, json=BODY)
        assert response.status_code == 200, response.text
        response.read()

    return call


def first_byte(client: httpx.Client, url: str) -> Callable[[], float]:
    def call() -> float:
        start = time.perf_counter()
        with client.stream("POST", url, json=STREAM_BODY) as response:
            chunks = response.iter_raw()
            next(chunks)
            ttfb = (time.perf_counter() - start) * 1000
            for _ in chunks:
                pass
        return ttfb

    return call


async def throughput(url: str, clients: int, per_client: int, **client_kw) -> tuple[int, float]:
    async def worker(client: httpx.AsyncClient) -> int:
        done = 0
        for _ in range(per_client):
            response = await client.post(url, json=BODY)
            if response.status_code == 200:
                done += 1
        return done

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(limits=limits, timeout=60, trust_env=False, **client_kw) as client:
        start = time.perf_counter()
        counts = await asyncio.gather(*(worker(client) for _ in range(clients)))
        return sum(counts), time.perf_counter() - start


def machine() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        model = next(
            (line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name")), "?"
        )
    except OSError:
        model = platform.processor() or "?"
    return f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--serve-fakes", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("-n", type=int, default=2000, help="sequential calls per measurement")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--per-client", type=int, default=60)
    args = parser.parse_args()
    if args.serve_fakes:
        serve_fakes(args.serve_fakes)
        return

    work = Path(tempfile.mkdtemp(prefix="halton-bench-"))
    fakes_proc = subprocess.Popen(
        [sys.executable, __file__, "--serve-fakes", str(work / "pki")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    fakes = json.loads(fakes_proc.stdout.readline())
    home = work / "home"
    port = free_port()
    env = {**os.environ, "HALTON_METER_HOME": str(home)}
    env.pop("HALTON_METER_PORT", None)
    cli = [sys.executable, "-m", "halton_meter.cli"]
    subprocess.run([*cli, "init"], env=env, check=True, capture_output=True)
    (home / "config.toml").write_text(
        f'[proxy]\nport = {port}\nupstream_ca_file = "{fakes["ca"]}"\n[providers.openai]\nupstream = "{fakes["openai"]}"\n'
    )
    started = subprocess.run([*cli, "start"], env=env, capture_output=True, text=True)
    if started.returncode:
        sys.exit(f"could not start the meter: {started.stderr}")
    meter_calls = 0
    try:
        fake_ca = ssl.create_default_context(cafile=fakes["ca"])
        meter_ca = ssl.create_default_context(cafile=str(home / "mitmproxy-ca-cert.pem"))
        direct_url = f"{fakes['openai']}/v1/chat/completions"
        base_url = f"http://127.0.0.1:{port}/openai/v1/chat/completions"
        proxy_url = "https://api.openai.com/v1/chat/completions"
        direct = httpx.Client(verify=fake_ca, trust_env=False, timeout=30)
        via_base = httpx.Client(trust_env=False, timeout=30)
        via_proxy = httpx.Client(
            proxy=f"http://127.0.0.1:{port}", verify=meter_ca, trust_env=False, timeout=30
        )
        n, warmup = args.n, max(50, args.n // 10)

        print(f"machine: {machine()}")
        modes = {
            "direct": (direct, direct_url),
            "base-URL": (via_base, base_url),
            "proxy": (via_proxy, proxy_url),
        }
        # Interleaved (one call per mode in turn), so drift on a busy laptop hits every mode alike.
        print(f"sequential non-streamed calls, n={n} per mode, interleaved (ms)")
        calls = {label: plain_call(client, url) for label, (client, url) in modes.items()}
        results = interleaved(calls, n, warmup)
        meter_calls += 2 * (n + warmup)
        for label, samples in results.items():
            print(f"  {label:9s} p50 {statistics.median(samples):6.2f}  p99 {percentile(samples, 0.99):6.2f}")
        d50, d99 = statistics.median(results["direct"]), percentile(results["direct"], 0.99)
        for label in ("base-URL", "proxy"):
            print(
                f"  added by the meter, {label:8s}: p50 {statistics.median(results[label]) - d50:+.2f} ms, "
                f"p99 {percentile(results[label], 0.99) - d99:+.2f} ms"
            )

        streams = max(200, n // 4)
        print(f"time to first byte of a stream, n={streams} per mode, interleaved (ms)")
        firsts = {label: first_byte(client, url) for label, (client, url) in modes.items()}
        ttfb = interleaved(firsts, streams, 20, measure_returned=True)
        meter_calls += 2 * (streams + 20)
        t50, t99 = statistics.median(ttfb["direct"]), percentile(ttfb["direct"], 0.99)
        print(f"  direct    p50 {t50:6.2f}  p99 {t99:6.2f}")
        for label in ("base-URL", "proxy"):
            print(
                f"  added by the meter, {label:8s}: p50 {statistics.median(ttfb[label]) - t50:+.2f} ms, "
                f"p99 {percentile(ttfb[label], 0.99) - t99:+.2f} ms"
            )

        print(f"throughput, {args.clients} concurrent clients x {args.per_client} calls")
        ok_direct, secs_direct = asyncio.run(
            throughput(direct_url, args.clients, args.per_client, verify=fake_ca)
        )
        print(f"  direct   {ok_direct / secs_direct:8.0f} calls/s")
        ok_meter, secs_meter = asyncio.run(throughput(base_url, args.clients, args.per_client))
        meter_calls += args.clients * args.per_client
        print(f"  base-URL {ok_meter / secs_meter:8.0f} calls/s ({ok_meter} ok)")
        for client in (direct, via_base, via_proxy):
            client.close()
    finally:
        subprocess.run([*cli, "stop"], env=env, capture_output=True)
        fakes_proc.stdin.close()
        fakes_proc.wait(10)
    rows = sqlite3.connect(home / "db.sqlite").execute("SELECT COUNT(*) FROM requests").fetchone()[0]
    print(f"rows: {rows} stored for {meter_calls} calls through the meter; rows lost = {meter_calls - rows}")


if __name__ == "__main__":
    main()
