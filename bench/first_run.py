"""The first run, as a new user meets it: `halton-cloud up --demo` on a clean data dir, timed from the command
to the API answering, to the demo loaded, and to each page's JSON twin having the demo's figures.

    uv run --frozen python bench/first_run.py                 # idle: nothing else of ours on the machine
    uv run --frozen python bench/first_run.py --busy-core     # one core kept busy by another process
    uv run --frozen python bench/first_run.py --entry uv      # `up` started through `uv run`, as scripts/run

The cloud runs as `scripts/run` starts it (embedded warehouse and PostgreSQL, the pipelines, the demo's
200,000 requests), on free ports under a temporary data dir, with a copy of the dbt project without its
target/ (a clean clone: no parsed manifest, no partial-parsing state). The benchmark signs in as the demo
owner and polls every page's JSON twin once a second: a page "has data" when it shows a positive dollar
figure (overview, projects, executive, reconciliation, cost centers), captured requests (audit), clusters,
or a run of the optimisation checks; "final" is when its figures last changed (the whole demo, not its
first batches). `--busy-core` keeps one core busy with a spinning process all along, as another program on
the machine would. Beside each milestone: the CPU seconds `up` and its processes had used by then, which a
shared machine's load moves far less than wall time. `--keep DIR` keeps up's output and dagster.log (the
first build's and the dbt build's own timings) for a look at where the time went.

To compare with an earlier commit in the same conditions, put its source trees first on PYTHONPATH (the
same virtualenv runs them): `git archive COMMIT daemon/src api/src warehouse/src dagster_project/src | tar
-x -C /tmp/before`, then PYTHONPATH=/tmp/before/daemon/src:/tmp/before/api/src:... and alternate runs.

Targets on 2 cores: dashboards within 60 s and clusters + optimisation within 90 s idle; 120 s / 180 s busy.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from decimal import Decimal, InvalidOperation
from pathlib import Path

import httpx
import psutil

from halton_meter.testing.processes import free_port

CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')
OWNER, PASSWORD = "ada@acme.example", "halton-demo"
DASHBOARDS = {
    "overview": "overview",
    "projects": "project-spend",
    "executive": "executive",
    "reconciliation": "reconciliation",
    "cost centers": "cost-center-spend",
    "audit": "audit/requests",
}
HISTORY = {"clusters": "clusters", "optimisation": "optimization"}
DBT_PROJECT = Path(__file__).resolve().parents[1] / "dbt"
QUIET_SECONDS = 30  # after every page has data, watch this long for figures still moving


def positive_usd(value: object) -> bool:
    """Somewhere in the JSON, a dollar figure above zero."""
    if isinstance(value, dict):
        for key, item in value.items():
            if "usd" in key and isinstance(item, str | int | float):
                try:
                    if Decimal(str(item)) > 0:
                        return True
                except InvalidOperation:
                    pass
            elif positive_usd(item):
                return True
    elif isinstance(value, list):
        return any(positive_usd(item) for item in value)
    return False


def has_data(page: str, body: dict) -> bool:
    if page == "audit":
        return bool(body.get("rows"))
    if page == "clusters":
        return bool(body.get("clusters"))
    if page == "optimisation":
        return body.get("computed_at") is not None
    return positive_usd(body)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--busy-core", action="store_true", help="Keep one core busy with another process.")
    parser.add_argument("--entry", choices=["uv", "venv"], default="venv", help="How `up` is started.")
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--extra", default="", help="More `up` arguments, space separated.")
    parser.add_argument("--keep", type=Path, help="Copy the data dir's logs here at the end.")
    args = parser.parse_args()
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if args.busy_core else None
    try:
        run(args)
    finally:
        if spinner is not None:
            spinner.kill()
            spinner.wait()


def run(args: argparse.Namespace) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    up = ["up", "--demo", "--data-dir", "", "--port", str(port), "--warehouse-port", "0"]
    up += ["--demo-requests", str(args.requests), *args.extra.split()]
    entry = (
        ["uv", "run", "--frozen", "halton-cloud"]
        if args.entry == "uv"
        else [str(Path(sys.executable).with_name("halton-cloud"))]
    )
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"load before {os.getloadavg()[0]:.1f}, busy core: {args.busy_core}, entry: {args.entry}")  # fmt: skip
    with tempfile.TemporaryDirectory(
        prefix="halton-first-run-", dir=os.environ.get("HALTON_BENCH_DIR")
    ) as tmp:
        up[up.index("--data-dir") + 1] = str(Path(tmp) / "cloud")
        env = {k: v for k, v in os.environ.items() if not k.startswith("HALTON_")}
        # A clean clone has no dbt/target/ (no parsed manifest, no partial-parsing state): a copy without it.
        dbt_project = Path(tmp) / "dbt"
        shutil.copytree(DBT_PROJECT, dbt_project, ignore=shutil.ignore_patterns("target", "logs"))
        env["HALTON_DBT_PROJECT_DIR"] = str(dbt_project)
        started = time.monotonic()
        output = Path(tmp) / "up.log"
        with output.open("wb") as log:
            process = subprocess.Popen([*entry, *up], env=env, stdout=log, stderr=subprocess.STDOUT)
        marks: dict[str, tuple[float, float]] = {}
        lines: list[tuple[float, str]] = []
        follower = threading.Thread(target=follow, args=(output, process, started, lines), daemon=True)
        follower.start()
        try:
            poll(base, started, marks, lines, process, args.timeout)
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            shutil.copy(output, args.keep / "up.log")
            for name in ("dagster.log", "warehouse.log"):
                if (Path(tmp) / "cloud" / name).exists():
                    shutil.copy(Path(tmp) / "cloud" / name, args.keep / name)
            (args.keep / "lines.txt").write_text("".join(f"+{at:6.1f} {line}" for at, line in lines))
        for at, line in lines:
            if "ready" in line or "demo loaded" in line or "dashboards" in line:
                print(f"  +{at:6.1f} s  up said: {line.strip()[:140]}")
    print(f"load after {os.getloadavg()[0]:.1f}")
    print("| milestone | seconds | CPU s of `up`'s processes |")
    print("| --- | ---: | ---: |")
    for name, (at, cpu) in marks.items():
        print(f"| {name} | {at:.0f} | {cpu:.0f} |")


def follow(path: Path, process: subprocess.Popen, started: float, lines: list) -> None:
    with path.open("r", errors="replace") as handle:
        while True:
            line = handle.readline()
            if line:
                lines.append((time.monotonic() - started, line))
            elif process.poll() is not None:
                return
            else:
                time.sleep(0.2)


def poll(base: str, started: float, marks: dict, lines: list, process, timeout: float) -> None:
    client = httpx.Client(base_url=base, timeout=30)
    pages = {**DASHBOARDS, **HISTORY}
    fingerprints: dict[str, str] = {}
    slug = None
    all_in = None
    while time.monotonic() - started < timeout:
        if process.poll() is not None:
            raise SystemExit(f"`up` exited with {process.returncode}")
        now = (time.monotonic() - started, tree_cpu(process.pid))
        if "API up" not in marks:
            try:
                if client.get("/healthz").status_code == 200:
                    marks["API up"] = now
            except httpx.HTTPError:
                pass
        if "demo loaded" not in marks and any("demo loaded" in line for _, line in lines):
            marks["demo loaded"] = now
        if "API up" in marks and slug is None:
            slug = sign_in(client)
        if slug is not None:
            for page, path in pages.items():
                try:
                    response = client.get(f"/v1/{slug}/{path}")
                except httpx.HTTPError:
                    continue
                if response.status_code != 200:
                    continue
                body = response.json()
                if not has_data(page, body):
                    continue
                marks.setdefault(f"{page}: data", now)
                # The overview's sync status counts seconds since the last sync: a clock, not a figure.
                figures = {k: v for k, v in body.items() if k != "sync"}
                digest = hashlib.sha256(json.dumps(figures, sort_keys=True).encode()).hexdigest()
                if fingerprints.get(page) != digest:
                    fingerprints[page] = digest
                    marks[f"{page}: final"] = now
        if all_in is None and "demo loaded" in marks and all(f"{p}: data" in marks for p in pages):
            all_in = now
        if all_in is not None and now[0] - all_in[0] > QUIET_SECONDS:
            break
        time.sleep(1)
    else:
        print(f"timed out after {timeout:.0f} s")
    dashboards = [marks.get(f"{p}: final") for p in DASHBOARDS]
    history = [marks.get(f"{p}: final") for p in HISTORY]
    if all(dashboards):
        marks["dashboards: all final"] = max(dashboards)
    if all(history):
        marks["clusters + optimisation: final"] = max(history)


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of `up` and every process it started: a live process's own, plus those of
    its children that have exited (the kernel adds them to the parent that waited for them). Far steadier
    than wall time on a shared machine; processes that daemonise (PostgreSQL's postmaster) are left out."""
    total = 0.0
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system + times.children_user + times.children_system
    return total


def sign_in(client: httpx.Client) -> str | None:
    try:
        token = CSRF_FIELD.search(client.get("/signin").text)
        if token is None:
            return None
        response = client.post(
            "/signin", data={"csrf_token": token.group(1), "email": OWNER, "password": PASSWORD}
        )
    except httpx.HTTPError:
        return None
    location = response.headers.get("location", "")
    parts = [p for p in location.split("/") if p]
    if response.status_code in (302, 303) and parts and parts[0] not in ("signin", "workspaces"):
        return parts[0]
    return None


if __name__ == "__main__":
    main()
