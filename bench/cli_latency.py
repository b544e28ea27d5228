"""How long the everyday commands take, start to exit, as a user's shell sees them.

Builds a throwaway meter home with a 10,000-row database (``halton_meter.testing.fake_cloud.store_rows``)
paired with the fake cloud (``FakeCloud.pair``, served from this process), then runs each command N times
as a subprocess of the venv's own ``halton-meter`` script (no ``uv run`` in front), taking turns so load
changes hit every command alike. The daemon is not running: ``status`` reads SQLite and the pid file.

Also measured in the same run: ``python -c pass`` (the interpreter's own start) and
``python -c 'import halton_meter.cli'`` (wall time, plus the cumulative figure ``-X importtime`` gives).

Each command runs twice per turn: with Python's bytecode cache (``.pyc`` files written to a throwaway
``PYTHONPYCACHEPREFIX`` by the warm-up runs, as a user's Python does after the first run) and without
it (``PYTHONDONTWRITEBYTECODE=1``, as on the project's machines): the interpreter then writes no cache
and reads only the ``.pyc`` files the install wrote. ``scripts/bootstrap.sh`` compiles every installed
package and the workspace's sources; a bare ``uv sync`` compiles nothing, and then every run compiles
click, rich... from source.

Run: ``uv run python bench/cli_latency.py [-n 20]``. Target: every command <= 0.3 s median on an idle
machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from halton_meter.home import init_home
from halton_meter.paths import HOME_ENV, MeterPaths
from halton_meter.testing.fake_cloud import FakeCloud, store_rows

ROWS = 10_000
# Four kinds of call, so the report has several groups per breakdown.
KINDS = (
    {"provider": "openai", "model_served": "gpt-4o", "project": "web"},
    {"provider": "anthropic", "model_served": "claude-sonnet-4", "project": "web"},
    {"provider": "openai", "model_served": "gpt-4.1-mini", "project": "batch"},
    {"provider": "gemini", "model_served": "gemini-2.5-pro", "project": "research", "cost_usd": None},
)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def make_home(folder: Path, cloud: FakeCloud) -> MeterPaths:
    paths = MeterPaths.resolve(folder / "home")
    init_home(paths)
    for kind in KINDS:
        store_rows(paths, ROWS // len(KINDS), **kind)
    cloud.pair(paths)
    return paths


def timed(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds, and the child's CPU seconds (user + system): on a shared machine the CPU figure
    moves much less with the load than the wall clock does."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} exited {done.returncode}: {done.stderr.decode()}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu


def import_time_us(python: str, env: dict[str, str]) -> int:
    """The cumulative microseconds ``-X importtime`` reports for ``halton_meter.cli``."""
    done = subprocess.run(
        [python, "-X", "importtime", "-c", "import halton_meter.cli"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    last = [line for line in done.stderr.splitlines() if line.rstrip().endswith("| halton_meter.cli")][-1]
    return int(last.split("|")[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=20, help="Runs per command (default 20).")
    parser.add_argument("--warmup", type=int, default=2, help="Untimed runs per command first.")
    args = parser.parse_args()

    python = sys.executable
    script = str(Path(python).parent / "halton-meter")
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="cli-latency-") as tmp, FakeCloud() as cloud:
        paths = make_home(Path(tmp), cloud)
        base = {
            k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")
        }
        envs = {
            "pyc": {**base, HOME_ENV: str(paths.home), "PYTHONPYCACHEPREFIX": str(Path(tmp) / "pycache")},
            "no pyc": {**base, HOME_ENV: str(paths.home), "PYTHONDONTWRITEBYTECODE": "1"},
        }
        commands = {
            "python -c pass": [python, "-c", "pass"],
            "python -c 'import halton_meter.cli'": [python, "-c", "import halton_meter.cli"],
            "status": [script, "status"],
            "cloud status": [script, "cloud", "status"],
            "cloud whoami": [script, "cloud", "whoami"],
            "report 7d": [script, "report", "7d"],
        }
        for env in envs.values():
            for command in commands.values():
                for _ in range(args.warmup):
                    timed(command, env)
        samples: dict[str, list[tuple[float, float]]] = {
            f"{label} [{mode}]": [] for mode in envs for label in commands
        }
        for _ in range(args.n):
            for label, command in commands.items():
                for mode, env in envs.items():
                    samples[f"{label} [{mode}]"].append(timed(command, env))
        imports = {
            mode: statistics.median(import_time_us(python, env) for _ in range(5))
            for mode, env in envs.items()
        }
    load_after = os.getloadavg()

    print(
        f"machine: {platform.processor() or platform.machine()}, nproc {os.cpu_count()}, Python {platform.python_version()}"
    )
    print(
        f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f}; {args.n} runs each, {ROWS:,} rows"
    )
    print(f"{'command':<48}{'median':>10}{'p95':>10}{'cpu median':>12}")
    for label, pairs in samples.items():
        wall, cpu = [w for w, _ in pairs], [c for _, c in pairs]
        print(
            f"{label:<48}{statistics.median(wall) * 1000:>8.0f}ms{percentile(wall, 0.95) * 1000:>8.0f}ms"
            f"{statistics.median(cpu) * 1000:>10.0f}ms"
        )
    for mode, micros in imports.items():
        print(f"-X importtime, halton_meter.cli cumulative [{mode}] (median of 5): {micros / 1000:.0f} ms")


if __name__ == "__main__":
    main()
