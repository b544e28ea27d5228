"""``init``, ``start``, ``stop``, ``status``, ``override``: setting up the meter's home, running its daemon,
and letting one call through a project's hard limit."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

import click
from rich.text import Text

from halton_meter.cli.terminal import console, fail, print_json, settings_or_exit
from halton_meter.paths import HOME_ENV, MeterPaths
from halton_meter.settings import Settings, SettingsError

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 30.0


def _needs_init(paths: MeterPaths) -> bool:
    return not (paths.machine.exists() and paths.ca_cert.exists() and paths.db.exists())


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def init(as_json: bool) -> None:
    """Create ~/.halton-meter: config, machine id, CA, database. Keeps what exists."""
    from halton_meter.home import HomeProblem, init_home

    settings = settings_or_exit()
    try:
        report = init_home(settings.paths)
    except (HomeProblem, OSError) as exc:
        fail(str(exc))
    if as_json:
        print_json(
            {
                "home": str(report.home),
                "machine_id": report.machine_id,
                "created": [str(p) for p in report.created],
                "kept": [str(p) for p in report.kept],
            }
        )
        return
    console.print(f"[bold]Halton Meter home:[/] {report.home}")
    for path in report.created:
        console.print(f"  [green]created[/] {path}")
    for path in report.kept:
        console.print(f"  [dim]kept[/]    {path}")
    console.print(f"  machine id: {report.machine_id}")
    console.print("\nNext: [bold]halton-meter start[/], then [bold]halton-meter ca[/] to trust the CA.")


@click.command()
@click.option("--port", type=int, default=None, help="Listen on this port (default: config, then 8090).")
@click.option(
    "--foreground", is_flag=True, help="Run in this terminal (Ctrl-C stops it); logs to stderr too."
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--detached-child", is_flag=True, hidden=True)
def start(port: int | None, foreground: bool, as_json: bool, detached_child: bool) -> None:
    """Start the daemon in the background (one per home)."""
    from halton_meter.pidfile import read_state, running_pid

    settings = settings_or_exit(port)
    paths = settings.paths
    if detached_child or foreground:
        _serve(settings, port, foreground=foreground)
        return
    pid = running_pid(paths.pidfile)
    if pid is not None:
        state = read_state(paths) or {}
        where = f" — mitm bound on {state['host']}:{state['port']}" if state.get("port") else ""
        fail(f"halton-meter is already running (pid {pid}){where}. Stop it first: halton-meter stop")
    if _needs_init(paths):
        from halton_meter.home import init_home

        init_home(paths)
        if not as_json:
            console.print(f"Initialised {paths.home}")
    paths.logs.mkdir(parents=True, exist_ok=True)
    out = paths.logs / "daemon.out"
    command = [sys.executable, "-m", "halton_meter.cli", "start", "--detached-child"]
    if port is not None:
        command += ["--port", str(port)]
    env = {**os.environ, HOME_ENV: str(paths.home)}
    with open(out, "ab") as sink:
        child = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            close_fds=True,
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        state = read_state(paths)
        # A child that failed at start leaves daemon.json saying it stopped (no port): not "up".
        if state and state.get("pid") == child.pid and state.get("port"):
            if as_json:
                print_json(
                    {"state": "running", "pid": child.pid, "listen": f"{state['host']}:{state['port']}"}
                )
            else:
                console.print(
                    f"[green]●[/] halton-meter started (pid {child.pid}) — mitm bound on {state['host']}:{state['port']}"
                )
                console.print(f"  logs: {paths.daemon_log}")
            return
        if child.poll() is not None:
            tail = out.read_text(errors="replace").strip().splitlines()[-5:]
            fail("the daemon exited at start:\n  " + "\n  ".join(tail or ["(no output)"]))
        time.sleep(0.05)
    fail(f"the daemon did not come up within {START_TIMEOUT_S:.0f}s; see {paths.daemon_log}")


def _serve(settings: Settings, port: int | None, *, foreground: bool) -> None:
    from halton_meter.daemon import MeterError, serve
    from halton_meter.home import HomeProblem, init_home
    from halton_meter.pidfile import AlreadyRunning

    if foreground and _needs_init(settings.paths):
        init_home(settings.paths)
    try:
        serve(settings.home, port, foreground=foreground)
    except AlreadyRunning as exc:
        fail(f"{exc}. Stop it first: halton-meter stop", 3)
    except (MeterError, SettingsError, HomeProblem) as exc:
        fail(str(exc))


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def stop(as_json: bool) -> None:
    """Stop the daemon cleanly (it writes every captured call before exiting)."""
    from halton_meter.pidfile import running_pid

    paths = settings_or_exit().paths
    pid = running_pid(paths.pidfile)
    if pid is None or pid < 0:
        if as_json:
            print_json({"state": "stopped", "was_running": False})
        else:
            console.print("halton-meter is not running.")
        return
    # Gone between the lock check and the signal: it is stopped, which is what we want.
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline:
        if running_pid(paths.pidfile) is None:
            if as_json:
                print_json({"state": "stopped", "was_running": True, "pid": pid})
            else:
                console.print(f"[red]●[/] halton-meter stopped (pid {pid}); all captured calls are saved.")
            return
        time.sleep(0.05)
    fail(f"the daemon (pid {pid}) did not stop within {STOP_TIMEOUT_S:.0f}s; see {paths.daemon_log}")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(as_json: bool) -> None:
    """The daemon, today's calls and spend, capture errors, cloud state."""
    from rich.table import Table

    from halton_meter import __version__
    from halton_meter.report import format_usd
    from halton_meter.status import collect_status

    result = collect_status(settings_or_exit())
    if as_json:
        print_json(result.to_json())
        return
    daemon = result.daemon
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    if daemon.state == "running":
        line = Text.assemble(
            ("● running", "bold green"), f"  pid {daemon.pid} · mitm bound on {daemon.listen}"
        )
    elif daemon.state == "unresponsive":
        line = Text.assemble(
            ("● not answering", "bold yellow"), f"  pid {daemon.pid}, expected on {daemon.listen}"
        )
    else:
        from halton_meter.cloud.state import ago, now_utc

        since = ""
        if daemon.last_seen_at is not None:
            since = f"  last seen {ago((now_utc() - daemon.last_seen_at).total_seconds())} ·"
        line = Text.assemble(("● stopped", "bold red"), f"{since}  run `halton-meter start`")
    table.add_row("daemon", line)
    today = result.today
    table.add_row("calls today", str(today.calls) if today else "—")
    table.add_row("spend today", format_usd(today.cost_usd) if today else "—")
    unpriced = today.unpriced_calls if today else 0
    table.add_row("unpriced calls", Text(str(unpriced), style="yellow" if unpriced else ""))
    table.add_row("provider errors", str(today.errors) if today else "—")
    errors = result.capture_error_total
    detail = ", ".join(f"{k} {v}" for k, v in result.capture_errors.items())
    table.add_row(
        "capture errors",
        Text(f"{errors}" + (f"  ({detail})" if detail else ""), style="red" if errors else ""),
    )
    table.add_row("cloud", _cloud_summary(result.cloud))
    if result.limits is not None:
        table.add_row("hard limits", _limits_summary(result.limits))
    if result.db_problem:
        table.add_row("database", Text(result.db_problem, style="red"))
    console.print(f"[bold]Halton Meter {__version__}[/]  [dim]{result.home}[/]")
    console.print(table)


def _cloud_summary(cloud) -> Text:
    from halton_meter.cloud import state

    if cloud is None or cloud.state == state.NOT_CONFIGURED:
        return Text(state.NOT_CONFIGURED)
    styles = {state.ACTIVE: "green", state.DEGRADED: "yellow", state.PAUSED: "red", state.NOT_RUNNING: "red"}
    parts = [cloud.workspace_slug or "?", f"{cloud.unsynced_rows} unsynced"]
    parts.append(f"last sync {state.ago(cloud.age_seconds(cloud.last_sync_at))}")
    if cloud.rejected_rows:
        parts.append(f"{cloud.rejected_rows} rejected")
    label = cloud.state + (f" ({cloud.paused_reason})" if cloud.paused_reason else "")
    return Text.assemble((label, styles.get(cloud.state, "")), "  " + " · ".join(parts))


def _limits_summary(limits) -> Text:
    style = "green" if limits.enforcing else "yellow" if limits.projects else ""
    lines = [Text(limits.summary, style=style)]
    for p in limits.projects:
        cloud = f"${p.cloud_usd:,.2f}" if p.cloud_usd is not None else "unknown"
        lines.append(
            Text(
                f"  {p.project}: budget ${p.budget_usd:,.2f} · cloud {cloud} + here ${p.local_usd:,.2f} · {p.note}",
                style="red" if p.reached else "",
            )
        )
    if limits.pending_overrides:
        lines.append(Text(f"  next call passes once: {', '.join(limits.pending_overrides)}"))
    return Text("\n").join(lines)


@click.command()
@click.argument("project")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def override(project: str, as_json: bool) -> None:
    """Let the next call of PROJECT through its budget's hard limit, once (recorded and synced)."""
    from halton_meter.cloud.state import now_utc
    from halton_meter.settings import SLUG_RE
    from halton_meter.spend_limits import grant_override, load
    from halton_meter.store import StoreError, open_store

    if not SLUG_RE.match(project) or len(project) > 128:
        fail(f"{project!r} is not a project slug (letters, digits, '.', '_', '-', '/')")
    settings = settings_or_exit()
    try:
        conn = open_store(settings.paths.db)
    except (StoreError, OSError) as exc:
        fail(str(exc))
    try:
        grant_override(conn, project, now_utc())
        limited = project in load(conn).limits
    finally:
        conn.close()
    if as_json:
        print_json({"project": project, "override": "next call", "limited": limited})
        return
    console.print(
        f"The next call of [bold]{project}[/] passes its budget limit, once; the override is recorded "
        "and sent to the cloud's audit log."
    )
    if not limited:
        console.print(f"[yellow]No hard limit is known for {project} yet: its calls pass anyway.[/]")
