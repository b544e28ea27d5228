"""`halton-cloud up` as a user runs it: a real process that starts everything, serves, and stops cleanly."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest
from click.testing import CliRunner

from halton_api.cloud_cli import main
from halton_meter.testing.processes import free_port

pytestmark = pytest.mark.slow


def _wait_for_line(
    process: subprocess.Popen[bytes], pattern: str, timeout: float, seen: list[str]
) -> re.Match[str]:
    deadline = time.monotonic() + timeout
    assert process.stderr is not None
    os.set_blocking(process.stderr.fileno(), False)
    buffer = ""
    while time.monotonic() < deadline:
        raw = process.stderr.read()
        if raw:
            chunk = raw.decode(errors="replace")
            buffer += chunk
            seen.append(chunk)
            match = re.search(pattern, buffer)
            if match:
                return match
        elif process.poll() is not None:
            break
        time.sleep(0.1)
    raise AssertionError(f"no {pattern!r} within {timeout}s; output:\n{''.join(seen)}")


def _running(pid: int) -> bool:
    # pg_ctl daemonises the postmaster; where nothing reaps orphans (a container's PID 1) it stays a zombie.
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_up_serves_a_healthy_api_and_stops_everything_on_sigterm(server_dir: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HALTON_")}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "halton_api",
            "up",
            "--data-dir",
            str(server_dir),
            "--port",
            "0",
            "--warehouse-port",
            "0",
            "--no-dagster",
        ],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        env=env,
    )
    seen: list[str] = []
    try:
        match = _wait_for_line(process, r"is up at (http://127\.0\.0\.1:\d+)", 90, seen)
        base = match.group(1)
        children = psutil.Process(process.pid).children(recursive=True)
        assert children, "the embedded warehouse server should run as a child process"
        health = httpx.get(f"{base}/healthz", timeout=10)
        assert health.status_code == 200, health.text
        assert health.json()["status"] == "ok"
        assert httpx.get(f"{base}/openapi.json", timeout=10).status_code == 200
        assert httpx.get(f"{base}/signup", timeout=10).status_code == 200
        # uvicorn's default would believe X-Forwarded-For from this loopback peer: each start a new address.
        assert pairing_starts_from_rotating_addresses(base, 11) == [201] * 10 + [429]
        postmaster = (server_dir / "postgres" / "postmaster.pid").read_text().split()[0]

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0, "".join(seen)
    finally:
        if process.poll() is None:
            process.kill()
    _, still_alive = psutil.wait_procs(children, timeout=15)
    assert not still_alive, f"left running: {still_alive}"
    assert not _running(int(postmaster)), "the embedded PostgreSQL should be stopped"
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{base}/healthz", timeout=2)


def test_up_from_the_environments_bin_runs_the_pipelines_and_ctrl_c_leaves_no_process(
    server_dir: Path,
) -> None:
    """Started as `.venv/bin/halton-cloud up` (the environment's bin/ not on PATH, no `uv run`), plain `up`
    runs Dagster on the port asked for; Ctrl-C stops it all: when `up` has exited, no process it started
    (Dagster's webserver, daemon, code server, the warehouse, PostgreSQL) is left."""
    bin_dir = Path(sys.executable).parent
    env = {k: v for k, v in os.environ.items() if not k.startswith("HALTON_")}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if Path(p) != bin_dir)
    dagster_port = free_port()
    process = subprocess.Popen(
        [str(bin_dir / "halton-cloud"), "up", "--data-dir", str(server_dir), "--port", "0",
         "--warehouse-port", "0", "--dagster-port", str(dagster_port)],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        env=env,
    )  # fmt: skip
    seen: list[str] = []
    try:
        _wait_for_line(process, rf"starting Dagster on http://127\.0\.0\.1:{dagster_port}", 90, seen)
        _wait_for_line(process, r"Press Ctrl-C to stop", 90, seen)
        # Wait for Dagster's code server: the process that once outlived `up` by a minute.
        deadline = time.monotonic() + 180
        while not any(
            "grpc" in " ".join(_cmdline(c)) for c in psutil.Process(process.pid).children(recursive=True)
        ):
            assert time.monotonic() < deadline and process.poll() is None, "".join(seen)
            time.sleep(0.2)
        _wait_for_dagster(dagster_port, process, seen)
        started = psutil.Process(process.pid).children(recursive=True)
        postmaster = int((server_dir / "postgres" / "postmaster.pid").read_text().split()[0])
        started.append(psutil.Process(postmaster))
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=120) == 0, "".join(seen)
    finally:
        if process.poll() is None:
            process.kill()
    left = [(c.pid, _cmdline(c)) for c in started if _running(c.pid)]
    assert not left, f"still running after `up` exited: {left}"
    output = "".join(seen)
    assert "dbt executable not found" not in output
    assert "warehouse: applied all" in output and "control plane: applied all" in output, output


def test_up_with_workers_serves_from_several_processes_and_ctrl_c_stops_them_all(server_dir: Path) -> None:
    """`up --workers 2`: two API processes answer on the one port (a sign-up on one is a session on the
    other: nothing lives in one process), and Ctrl-C stops the workers and everything else `up` started."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HALTON_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "halton_api", "up", "--data-dir", str(server_dir), "--port", "0",
         "--warehouse-port", "0", "--no-dagster", "--workers", "2"],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        env=env,
    )  # fmt: skip
    seen: list[str] = []
    started: list[psutil.Process] = []
    try:
        _wait_for_line(process, r"Press Ctrl-C to stop", 120, seen)
        base = re.search(r"is up at (http://127\.0\.0\.1:\d+)", "".join(seen)).group(1)
        started += psutil.Process(process.pid).children(recursive=True)
        workers = [c for c in started if "spawn_main" in " ".join(_cmdline(c))]
        assert len(workers) == 2, [(c.pid, _cmdline(c)) for c in started]
        assert httpx.get(f"{base}/healthz", timeout=10).json()["status"] == "ok"
        # Fresh connections land on either worker; every one of them sees the same control plane.
        for _ in range(6):
            assert httpx.get(f"{base}/signup", timeout=10).status_code == 200
        postmaster = int((server_dir / "postgres" / "postmaster.pid").read_text().split()[0])
        started.append(psutil.Process(postmaster))
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=90) == 0, "".join(seen)
    finally:
        if process.poll() is None:  # the test failed: leave no worker behind either
            for child in [*started, psutil.Process(process.pid)]:
                with contextlib.suppress(psutil.NoSuchProcess):
                    child.kill()
    left = [(c.pid, _cmdline(c)) for c in started if _running(c.pid)]
    assert not left, f"still running after `up` exited: {left}"
    assert "stopped everything halton-cloud started" in "".join(seen) + process.stderr.read().decode()


def test_up_with_the_demo_builds_its_marts_before_dagster_starts_and_ctrl_c_leaves_no_process(
    server_dir: Path,
) -> None:
    """`up --demo`: progress lines, the final "Ready" line once the marts cover the demo, built by one Dagster
    run in the first build's own process; Dagster's deployment starts after it and its sensor does not build the
    same rows again; Ctrl-C leaves no process behind."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HALTON_")}
    dagster_port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "halton_api", "up", "--demo", "--demo-requests", "2000", "--data-dir",
         str(server_dir), "--port", "0", "--warehouse-port", "0", "--dagster-port", str(dagster_port)],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        env=env,
    )  # fmt: skip
    seen: list[str] = []
    try:
        # One pattern for the whole sequence, in this order (a read can bring several lines at once).
        _wait_for_line(
            process,
            r"(?s)Dagster will start on .* once the first marts build is done"
            r".*demo loaded: workspace"
            r".*demo in the warehouse; building the marts from it"
            r".*marts built: the dashboards have the demo's figures"
            r".*Ready: http://127\.0\.0\.1:\d+/signin as ada@acme\.example"
            rf".*starting Dagster on http://127\.0\.0\.1:{dagster_port}",
            900,
            seen,
        )
        _wait_for_dagster(dagster_port, process, seen)
        log = server_dir / "dagster.log"
        deadline = time.monotonic() + 300  # the daemon's first look at the ingested rows
        while "Sensor marts_after_ingestion skipped: nothing ingested since" not in log.read_text():
            assert time.monotonic() < deadline and process.poll() is None, log.read_text()[-4000:]
            time.sleep(1)
        # The runs as Dagster records them (in PostgreSQL, read through its UI's GraphQL while `up` runs).
        runs = httpx.post(
            f"http://127.0.0.1:{dagster_port}/graphql",
            json={
                "query": "{ runsOrError { ... on Runs { results { jobName status tags { key value } } } } }"
            },
            timeout=30,
        ).json()["data"]["runsOrError"]["results"]
        started = psutil.Process(process.pid).children(recursive=True)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=120) == 0, "".join(seen)
    finally:
        if process.poll() is None:  # a failed assertion: stop it as Ctrl-C does, so nothing is left behind
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                process.kill()
    left = [(c.pid, _cmdline(c)) for c in started if _running(c.pid)]
    assert not left, f"still running after `up` exited: {left}"
    # Runs a schedule launched are left out: an hourly one (history marts at :07) may come due while `up`
    # runs, whatever the first build did.
    tagged = [(r, {t["key"]: t["value"] for t in r["tags"]}) for r in runs]
    assert [
        (r["jobName"], r["status"], tags.get("halton/started_by"))
        for r, tags in tagged
        if "dagster/schedule_name" not in tags
    ] == [("halton_marts", "SUCCESS", "up")]


def _cmdline(process: psutil.Process) -> list[str]:
    try:
        return process.cmdline()
    except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
        return []


def _wait_for_dagster(port: int, process: subprocess.Popen[bytes], seen: list[str]) -> None:
    deadline = time.monotonic() + 180
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/server_info", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline and process.poll() is None, (
            f"Dagster never answered: {''.join(seen)}"
        )
        time.sleep(0.5)


def test_production_without_a_secret_refuses_to_start(server_dir: Path) -> None:
    result = CliRunner().invoke(
        main,
        ["migrate", "--data-dir", str(server_dir)],
        env={"HALTON_ENV": "production", "HALTON_SECRET_KEY": "changethis"},
    )
    assert result.exit_code != 0
    assert "HALTON_SECRET_KEY" in result.output


def test_serve_runs_the_api_believing_no_forwarded_header(
    tmp_path: Path, postgres_url: str, warehouse
) -> None:
    """The production command: only the API, on the stores the environment names."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HALTON_")}
    env.update(
        HALTON_DATA_DIR=str(tmp_path),
        HALTON_DATABASE_URL=postgres_url,
        HALTON_CLICKHOUSE_URL=warehouse.url,
        HALTON_CLICKHOUSE_DATABASE_PREFIX=warehouse.prefix,
    )
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "halton_api", "serve", "--port", str(port)],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        env=env,
    )
    seen: list[str] = []
    try:
        _wait_for_line(process, r"Application startup complete", 60, seen)
        base = f"http://127.0.0.1:{port}"
        assert pairing_starts_from_rotating_addresses(base, 11) == [201] * 10 + [429]
        process.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises the signal, so the exit status is -SIGTERM.
        assert process.wait(timeout=30) in (0, -signal.SIGTERM), "".join(seen)
    finally:
        if process.poll() is None:
            process.kill()


def pairing_starts_from_rotating_addresses(base: str, count: int) -> list[int]:
    """Statuses of `count` pairing starts, each claiming another address in X-Forwarded-For."""
    return [
        httpx.post(
            f"{base}/v1/pairing/start",
            json={"machine_id": f"m{i}"},
            headers={"X-Forwarded-For": f"203.0.113.{i + 1}"},
            timeout=10,
        ).status_code
        for i in range(count)
    ]


def test_migrations_are_listed_without_false_gaps() -> None:
    """ "applied 7 migration(s): 0001, 0002, 0003, 0005…" read like a skipped migration: numbers never used
    are named as such, and a partial run names what it applied."""
    from halton_api.cloud_cli import _applied
    from halton_warehouse.migrate import Migration

    migrations = [Migration(v, f"step_{v}", "") for v in (1, 2, 3, 5)]
    assert _applied([1, 2, 3, 5], migrations) == "applied all 4 migrations, 0001 to 0005; 0004 was never used"
    assert _applied([5], migrations) == "applied 1 new of 4 migrations: 0005 step_5"
    assert _applied([], migrations) == "up to date (4 migrations, newest 0005 step_5)"
