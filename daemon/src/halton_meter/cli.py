"""``halton-meter``: the command line. It owns the terminal; everything else logs.

Heavy modules (mitmproxy, httpx, cryptography, pricing data, rich's tables) are imported inside the
commands that need them, so ``status``, ``cloud status`` and ``report`` start fast;
``daemon/tests/test_cli_imports.py`` fails if one of them creeps back onto those paths.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from decimal import Decimal
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.markup import escape
from rich.text import Text

from halton_meter.paths import HOME_ENV, MeterPaths
from halton_meter.rates_cli import rates
from halton_meter.settings import Settings, SettingsError, key_fingerprint, load_settings

# soft_wrap: paths and commands must stay copy-pasteable, not folded at the terminal width.
console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 30.0


def _fail(message: str, code: int = 1) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    sys.exit(code)


def _settings(port: int | None = None) -> Settings:
    try:
        return load_settings(port=port)
    except SettingsError as exc:
        _fail(str(exc), 2)


def _print_json(document: Any) -> None:
    click.echo(json.dumps(document, indent=2, sort_keys=False, default=str))


def _needs_init(paths: MeterPaths) -> bool:
    return not (paths.machine.exists() and paths.ca_cert.exists() and paths.db.exists())


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="halton-meter", prog_name="halton-meter")
def main() -> None:
    """Halton Meter: see what every LLM API call costs, on this machine.

    The daemon is a local proxy on 127.0.0.1:8090. Point tools at it with HTTPS_PROXY (and trust the
    meter's CA: `halton-meter ca`) or with a base URL such as
    ANTHROPIC_BASE_URL=http://127.0.0.1:8090/anthropic. Files live in ~/.halton-meter
    (HALTON_METER_HOME to move them).
    """


main.add_command(rates)


# ---------------------------------------------------------------------------------------------------
# init / start / stop


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def init(as_json: bool) -> None:
    """Create ~/.halton-meter: config, machine id, CA, database. Keeps what exists."""
    from halton_meter.home import HomeProblem, init_home

    settings = _settings()
    try:
        report = init_home(settings.paths)
    except (HomeProblem, OSError) as exc:
        _fail(str(exc))
    if as_json:
        _print_json(
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


@main.command()
@click.option("--port", type=int, default=None, help="Listen on this port (default: config, then 8090).")
@click.option(
    "--foreground", is_flag=True, help="Run in this terminal (Ctrl-C stops it); logs to stderr too."
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--detached-child", is_flag=True, hidden=True)
def start(port: int | None, foreground: bool, as_json: bool, detached_child: bool) -> None:
    """Start the daemon in the background (one per home)."""
    from halton_meter.pidfile import read_state, running_pid

    settings = _settings(port)
    paths = settings.paths
    if detached_child or foreground:
        _serve(settings, port, foreground=foreground)
        return
    pid = running_pid(paths.pidfile)
    if pid is not None:
        state = read_state(paths) or {}
        where = f" — mitm bound on {state['host']}:{state['port']}" if state.get("port") else ""
        _fail(f"halton-meter is already running (pid {pid}){where}. Stop it first: halton-meter stop")
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
                _print_json(
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
            _fail("the daemon exited at start:\n  " + "\n  ".join(tail or ["(no output)"]))
        time.sleep(0.05)
    _fail(f"the daemon did not come up within {START_TIMEOUT_S:.0f}s; see {paths.daemon_log}")


def _serve(settings: Settings, port: int | None, *, foreground: bool) -> None:
    from halton_meter.daemon import MeterError, serve
    from halton_meter.home import HomeProblem, init_home
    from halton_meter.pidfile import AlreadyRunning

    if foreground and _needs_init(settings.paths):
        init_home(settings.paths)
    try:
        serve(settings.home, port, foreground=foreground)
    except AlreadyRunning as exc:
        _fail(f"{exc}. Stop it first: halton-meter stop", 3)
    except (MeterError, SettingsError, HomeProblem) as exc:
        _fail(str(exc))


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def stop(as_json: bool) -> None:
    """Stop the daemon cleanly (it writes every captured call before exiting)."""
    from halton_meter.pidfile import running_pid

    paths = _settings().paths
    pid = running_pid(paths.pidfile)
    if pid is None or pid < 0:
        if as_json:
            _print_json({"state": "stopped", "was_running": False})
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
                _print_json({"state": "stopped", "was_running": True, "pid": pid})
            else:
                console.print(f"[red]●[/] halton-meter stopped (pid {pid}); all captured calls are saved.")
            return
        time.sleep(0.05)
    _fail(f"the daemon (pid {pid}) did not stop within {STOP_TIMEOUT_S:.0f}s; see {paths.daemon_log}")


# ---------------------------------------------------------------------------------------------------
# status / report / reprice


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(as_json: bool) -> None:
    """The daemon, today's calls and spend, capture errors, cloud state."""
    from rich.table import Table

    from halton_meter import __version__
    from halton_meter.report import format_usd
    from halton_meter.status import collect_status

    result = collect_status(_settings())
    if as_json:
        _print_json(result.to_json())
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


def _period_options(fn):
    fn = click.option(
        "--to", "to_", type=click.DateTime(["%Y-%m-%d"]), help="Last day (inclusive), YYYY-MM-DD."
    )(fn)
    fn = click.option("--from", "from_", type=click.DateTime(["%Y-%m-%d"]), help="First day, YYYY-MM-DD.")(fn)
    return fn


def _period(name: str | None, from_: datetime | None, to_: datetime | None):
    from halton_meter.report import PeriodError, parse_period

    try:
        return parse_period(name, from_.date() if from_ else None, to_.date() if to_ else None)
    except PeriodError as exc:
        _fail(str(exc), 2)


def _readonly_db(settings: Settings):
    from halton_meter.store import StoreError, connect

    try:
        return connect(settings.paths.db, readonly=True)
    except StoreError as exc:
        _fail(str(exc))


@main.command()
@click.argument(
    "period",
    required=False,
    type=click.Choice(["today", "yesterday", "7d", "30d", "this-month", "last-month", "all"]),
)
@_period_options
@click.option(
    "--by",
    "by",
    multiple=True,
    type=click.Choice(["project", "model", "provider", "day", "repository", "branch", "ticket", "tool"]),
    help="Only these breakdowns (repeatable). Default: project, model, provider and day.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--csv", "as_csv", is_flag=True, help="CSV on stdout (one row per group, plus a total).")
def report(
    period: str | None,
    from_: datetime | None,
    to_: datetime | None,
    by: tuple[str, ...],
    as_json: bool,
    as_csv: bool,
) -> None:
    """Spend by project, model, provider and day. Reads only the local database; works offline.

    PERIOD is today (default), yesterday, 7d, 30d, this-month, last-month or all; or use --from/--to.
    Calls without a price are counted as unpriced, never shown as $0.
    """
    from halton_meter.csv_export import SafeCsvWriter
    from halton_meter.report import CSV_COLUMNS, DEFAULT_DIMENSIONS, csv_rows, spend_report

    if as_json and as_csv:
        _fail("choose one of --json and --csv", 2)
    settings = _settings()
    chosen = _period(period, from_, to_)
    conn = _readonly_db(settings)
    try:
        result = spend_report(conn, chosen, tuple(by) or DEFAULT_DIMENSIONS)
        if result.totals.unpriced_calls:
            # Only then: which models, and whether the catalogue in force knows them.
            from halton_meter.catalogue import active_catalogue
            from halton_meter.report import unpriced_models

            result.unpriced = unpriced_models(conn, chosen, active_catalogue(settings.paths.catalogue))
    finally:
        conn.close()
    if as_json:
        _print_json(result.to_json())
        return
    if as_csv:
        writer = SafeCsvWriter(sys.stdout, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        writer.writerows(csv_rows(result))
        return
    _print_report(result)


def _print_report(result) -> None:
    from rich.table import Table

    from halton_meter.report import format_usd

    totals = result.totals
    console.print(f"[bold]Spend {result.period.label}[/]")
    summary = f"{format_usd(totals.cost_usd)} over {totals.calls} calls"
    if totals.unpriced_calls:
        summary += f"  [yellow]+ {totals.unpriced_calls} unpriced[/]"
    if totals.errors:
        summary += f"  [dim]({totals.errors} errors)[/]"
    console.print(summary)
    for item in result.unpriced:
        console.print(f"[yellow]{escape(item.line())}[/]", highlight=False)
    if not totals.calls:
        console.print("[dim]No calls in this period.[/]")
        return
    for dim, groups in result.groups.items():
        table = Table(title=f"by {dim}", title_justify="left", title_style="bold")
        table.add_column(dim)
        table.add_column("cost", justify="right")
        table.add_column("calls", justify="right")
        table.add_column("unpriced", justify="right")
        table.add_column("errors", justify="right")
        table.add_column("input tok", justify="right")
        table.add_column("output tok", justify="right")
        for g in groups:
            table.add_row(
                g.key,
                format_usd(g.cost_usd),
                str(g.calls),
                Text(str(g.unpriced_calls), style="yellow") if g.unpriced_calls else "0",
                str(g.errors),
                f"{g.input_tokens:,}",
                f"{g.output_tokens:,}",
            )
        table.add_section()
        table.add_row(
            "total",
            format_usd(totals.cost_usd),
            str(totals.calls),
            str(totals.unpriced_calls),
            str(totals.errors),
            f"{totals.input_tokens:,}",
            f"{totals.output_tokens:,}",
            style="bold",
        )
        console.print(table)


@main.command()
@click.argument(
    "period",
    required=False,
    type=click.Choice(["today", "yesterday", "7d", "30d", "this-month", "last-month", "all"]),
)
@_period_options
@click.option("--unpriced", "unpriced_only", is_flag=True, help="Only calls without a cost.")
@click.option("--dry-run", is_flag=True, help="Show what would change; write nothing.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def reprice(
    period: str | None,
    from_: datetime | None,
    to_: datetime | None,
    unpriced_only: bool,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Re-price stored calls with the prices in force (after `rates update` or a rates.json edit).

    PERIOD defaults to all calls; --unpriced takes only calls without a cost (never set to $0: a call
    stays unpriced until a catalogue knows its model). A changed row keeps its earlier price in its
    history and is marked for re-sync to the cloud.

    rates.json (in the meter's home) overrides prices, in USD per million tokens:
    {"format": 1, "models": {"openai/gpt-4.1": {"input": "1.60", "output": "6.40", "cache_read": "0.40"}}}
    """
    from rich.progress import Progress
    from rich.table import Table

    from halton_meter.prices_in_force import prices_in_force
    from halton_meter.pricing import RatesFileError
    from halton_meter.report import format_usd
    from halton_meter.reprice import reprice as run_reprice
    from halton_meter.reprice import total_usd
    from halton_meter.store import StoreError, open_store

    settings = _settings()
    chosen = _period(period or "all", from_, to_) if (period or from_ or to_) else None
    try:
        pricebook = prices_in_force(settings)
    except RatesFileError as exc:
        _fail(str(exc))
    if not settings.paths.db.exists():
        _fail(f"{settings.paths.db} does not exist yet: run `halton-meter init`")
    try:
        conn = open_store(settings.paths.db)
    except StoreError as exc:
        _fail(str(exc))
    try:
        if as_json:
            summary = run_reprice(conn, pricebook, chosen, unpriced_only=unpriced_only, dry_run=dry_run)
        else:
            with Progress(transient=True, console=console) as progress:
                task = progress.add_task("re-pricing", total=None)
                summary = run_reprice(
                    conn,
                    pricebook,
                    chosen,
                    unpriced_only=unpriced_only,
                    dry_run=dry_run,
                    progress=lambda done, total: progress.update(task, completed=done, total=total),
                )
    finally:
        conn.close()
    if as_json:
        _print_json(summary.to_json())
        return
    before, after = total_usd(summary.before_nusd), total_usd(summary.after_nusd)
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("prices", summary.price_data)
    table.add_row("rows examined", str(summary.examined))
    table.add_row("rows changed", str(summary.changed) + (" (dry run: nothing written)" if dry_run else ""))
    table.add_row("newly priced", str(summary.newly_priced))
    table.add_row("now unpriced", str(summary.newly_unpriced))
    table.add_row("without usage", f"{summary.skipped_no_usage} (nothing to price)")
    table.add_row("total", f"{format_usd(before)} → {format_usd(after)}  ({_signed_usd(after - before)})")
    console.print(table)
    if summary.by_model:
        changes = Table(title="changes by model", title_justify="left", title_style="bold")
        for column in ("model", "rows", "before", "after", "change"):
            changes.add_column(column, justify="left" if column == "model" else "right")
        for item in summary.to_json()["by_model"]:
            b, a = Decimal(item["before_usd"]), Decimal(item["after_usd"])
            changes.add_row(
                item["model"], str(item["rows"]), format_usd(b), format_usd(a), _signed_usd(a - b)
            )
        console.print(changes)


def _signed_usd(value) -> str:
    from halton_meter.report import format_usd

    return ("+" if value > 0 else "-" if value < 0 else "±") + format_usd(abs(value))


# ---------------------------------------------------------------------------------------------------
# ca / doctor / fingerprint


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def ca(as_json: bool) -> None:
    """Where the meter's CA is, and how to trust it (system and per tool)."""
    from halton_meter.ca import CaProblem, inspect_ca, write_bundle
    from halton_meter.pidfile import read_state, running_pid

    settings = _settings()
    paths = settings.paths
    # The port the running daemon listens on (it may have been started with --port), else the configured one.
    running = (read_state(paths) if running_pid(paths.pidfile) is not None else None) or {}
    proxy = f"http://127.0.0.1:{running.get('port') or settings.port}"
    try:
        info = inspect_ca(paths)
        if not paths.ca_bundle.exists():
            write_bundle(paths)
    except CaProblem as exc:
        _fail(str(exc))
    cert, bundle = info.cert_path, info.bundle_path
    if as_json:
        _print_json(
            {
                **info.to_json(),
                "trust": {
                    "macos": f"sudo security add-trusted-cert -d -r trustRoot -k /Library/Keychains/System.keychain {cert}",
                    "linux": f"sudo cp {cert} /usr/local/share/ca-certificates/halton-meter.crt && sudo update-ca-certificates",
                    "env": {
                        "NODE_EXTRA_CA_CERTS": str(cert),
                        "REQUESTS_CA_BUNDLE": str(bundle),
                        "SSL_CERT_FILE": str(bundle),
                        "HTTPS_PROXY": proxy,
                    },
                },
            }
        )
        return
    console.print(f"[bold]CA certificate:[/] {cert}")
    console.print(f"  {info.subject} · SHA-256 {info.sha256}")
    console.print(f"  valid until {info.not_after:%Y-%m-%d}")
    console.print(f"[bold]CA bundle[/] (public roots + the meter's CA): {bundle}\n")
    console.print("[bold]Trust it system-wide[/]")
    console.print("  macOS:")
    console.print(
        f"    sudo security add-trusted-cert -d -r trustRoot -k /Library/Keychains/System.keychain {cert}",
        highlight=False,
        soft_wrap=True,
    )
    console.print("  Linux (Debian/Ubuntu):")
    console.print(
        f"    sudo cp {cert} /usr/local/share/ca-certificates/halton-meter.crt",
        highlight=False,
        soft_wrap=True,
    )
    console.print("    sudo update-ca-certificates")
    console.print(
        "\n[bold]Or per tool[/] (these replace the trust store, so use the bundle, except Node which adds):"
    )
    console.print(f"  export NODE_EXTRA_CA_CERTS={cert}", highlight=False, soft_wrap=True)
    console.print(f"  export REQUESTS_CA_BUNDLE={bundle}", highlight=False, soft_wrap=True)
    console.print(f"  export SSL_CERT_FILE={bundle}", highlight=False, soft_wrap=True)
    console.print(f"\nThen send calls through the meter: export HTTPS_PROXY={proxy}", highlight=False)
    console.print(
        f"(or skip the CA entirely with base URLs, e.g. ANTHROPIC_BASE_URL={proxy}/anthropic)",
        highlight=False,
    )


@main.command()
@click.option("--port", type=int, default=None, help="Check this port instead of the configured one.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def doctor(port: int | None, as_json: bool) -> None:
    """Check that calls can reach the meter: port, CA, a test call through the proxy, environment."""
    from halton_meter.doctor import FAIL, WARN, run_checks

    checks = run_checks(port=port)
    failed = any(c.status == FAIL for c in checks)
    if as_json:
        _print_json({"ok": not failed, "checks": [c.to_json() for c in checks]})
    else:
        marks = {"ok": "[green]✓[/]", WARN: "[yellow]![/]", FAIL: "[red]✗[/]"}
        for check in checks:
            console.print(
                f"{marks[check.status]} [bold]{check.name}[/]: {escape(check.detail)}", highlight=False
            )
            if check.fix and check.status != "ok":
                console.print(f"    → {escape(check.fix)}", highlight=False)
        console.print("\n[green]All good.[/]" if not failed else "\n[red]Some checks failed.[/]")
    if failed:
        sys.exit(1)


@main.command()
def fingerprint() -> None:
    """Print the fingerprint of an API key read from stdin, for [attribution.api_keys] in config.toml."""
    key = click.prompt("API key", hide_input=True) if sys.stdin.isatty() else sys.stdin.read()
    key = key.strip()
    if not key:
        _fail("no key given on stdin", 2)
    short = key_fingerprint(key)[: len("sha256:") + 16]
    console.print(short, highlight=False)
    console.print(
        f'[dim]config.toml, under {escape("[attribution.api_keys]")}:[/]  "{short}" = "your-project"',
        highlight=False,
    )


# ---------------------------------------------------------------------------------------------------
# cloud: pairing and sync


@main.group()
def cloud() -> None:
    """Pair this machine with a Halton Meter Cloud workspace, and watch the sync.

    Off by default: nothing leaves this machine until `cloud connect` is approved in the browser.
    """


def _base_url_option(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    from halton_meter.settings import cloud_base_url

    if value is None:
        return None
    try:
        return cloud_base_url(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _label(name: str, value: object) -> None:
    """One aligned ``Name:  value`` line, as the product documents show them."""
    console.print(f"{name + ':':<17}{value}", highlight=False, markup=False)


def _paired(settings: Settings):
    """The saved credentials, or exit with what to run."""
    from halton_meter.cloud.credentials import CredentialsProblem, load_credentials

    try:
        credentials = load_credentials(settings.paths)
    except CredentialsProblem as exc:
        _fail(str(exc))
    if credentials is None:
        _fail("this machine is not connected to Halton Meter Cloud: run `halton-meter cloud connect`")
    return credentials


def _ready_to_sync():
    """Settings, credentials, cloud status and an open store for a command that talks to the cloud on the
    meter's behalf, or exit with what to run first (not paired, sync off, sync paused, store unreadable)."""
    from halton_meter.cloud import state
    from halton_meter.store import StoreError, open_store

    settings = _settings()
    credentials = _paired(settings)
    current = state.load_status(settings)
    if current.state == state.NOT_CONFIGURED:
        _fail(
            current.problem or "cloud sync is off ([cloud] enabled = false): run `halton-meter cloud connect`"
        )
    if current.paused_reason:
        _fail(f"sync is paused ({current.paused_reason}): run `halton-meter cloud resume` first")
    try:
        conn = open_store(settings.paths.db)
    except StoreError as exc:
        _fail(str(exc))
    return settings, credentials, current, conn


def _devices_page(settings: Settings, slug: str | None) -> str:
    return f"{settings.cloud_dashboard_origin}/{slug or '[workspace]'}/settings/devices"


def _forbidden_advice(settings: Settings, slug: str | None) -> str:
    return (
        "Do not run `halton-meter cloud connect`: the token is still valid and connect would revoke it. "
        f"Ask a workspace owner to re-invite this machine at {_devices_page(settings, slug)}, "
        "then run `halton-meter cloud resume`."
    )


def _withdraw(client, ticket) -> None:
    """Cancel an abandoned code on the cloud; a second Ctrl-C must not cut the cancel short."""
    from halton_meter.cloud import pairing

    if ticket is None:
        return
    previous_handler = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        err_console.print(escape(pairing.withdraw(client, ticket)), highlight=False)
    finally:
        signal.signal(signal.SIGINT, previous_handler)


@cloud.command()
@click.option(
    "--base-url",
    callback=_base_url_option,
    help="Cloud API to pair with (self-hosted or development). Saved to config.toml on approval. "
    "Default: [cloud] base_url, HALTON_METER_CLOUD_URL, https://api.haltonmeter.com.",
)
@click.option(
    "--poll-interval-seconds",
    type=click.FloatRange(min=0.01),
    default=2.0,
    show_default=True,
    help="How often to ask the cloud whether the code was approved.",
)
@click.option(
    "--timeout-seconds",
    type=click.FloatRange(min=0.1),
    default=600.0,
    show_default=True,
    help="Give up after this long (codes expire after 10 minutes anyway).",
)
@click.option(
    "--force",
    is_flag=True,
    help="Re-pair a paired machine without asking, even one the workspace removed (HTTP 403). "
    "The current token keeps working until the new pairing is approved.",
)
def connect(base_url: str | None, poll_interval_seconds: float, timeout_seconds: float, force: bool) -> None:
    """Pair this machine: print a one-time code, wait for approval in the browser, save the token."""
    from halton_meter.cloud import link, pairing, state
    from halton_meter.cloud.client import CloudClient, host_of
    from halton_meter.cloud.config_table import ConfigEditError
    from halton_meter.cloud.credentials import CredentialsProblem, load_credentials
    from halton_meter.home import HomeProblem, load_machine_id
    from halton_meter.status import probe_daemon

    settings = _settings()
    paths = settings.paths
    if probe_daemon(settings).state != "running":
        _fail("daemon not running: run halton-meter status and halton-meter start")
    try:
        machine_id = load_machine_id(paths)
        previous = load_credentials(paths)
    except (HomeProblem, CredentialsProblem) as exc:
        _fail(str(exc))
    if previous is not None:
        current = state.load_status(settings)
        if current.paused_reason == state.PAUSED_FORBIDDEN and not force:
            _fail(
                f"the workspace removed this machine (paused_forbidden). {_forbidden_advice(settings, current.workspace_slug)} "
                "To pair anyway (the old token is revoked), run `halton-meter cloud connect --force`."
            )
        # A revoked token (paused_unauthorised) has nothing left to lose: re-pairing is its cure.
        if current.paused_reason != state.PAUSED_UNAUTHORISED and not force:
            paired_to = (
                f"this machine is paired with workspace {current.workspace_slug or previous.workspace_id!r}"
            )
            if not sys.stdin.isatty():
                _fail(
                    f"{paired_to}: to pair it again, run `halton-meter cloud connect --force` "
                    "(the current token keeps working until the new pairing is approved)"
                )
            if not click.confirm(
                f"{paired_to.capitalize()}. Pair it again? The current token keeps working until the new "
                "pairing is approved, then it is revoked",
                default=False,
            ):
                _fail("nothing changed: this machine stays paired as before")
    target = base_url or settings.cloud_base_url
    client = CloudClient(target)
    ticket = None
    try:
        console.print(f"Requesting pairing code from {host_of(target)}…", highlight=False)
        ticket = pairing.request_code(client, machine_id=machine_id, hostname=link.hostname_snapshot())
        console.print(f"Pairing code: {ticket.code}", highlight=False, markup=False)
        console.print(f"Approve at: {ticket.approve_url}", highlight=False, markup=False)
        console.print("Waiting for approval… (Ctrl-C to cancel)", highlight=False)
        approval = pairing.wait_for_approval(
            client,
            ticket,
            poll_interval=poll_interval_seconds,
            timeout=timeout_seconds,
            on_retry=lambda message: err_console.print(f"[yellow]{escape(message)}[/]", highlight=False),
        )
        # Writing the files must not be cut half-way by a late Ctrl-C.
        previous_handler = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            paired = link.complete_pairing(
                paths,
                base_url=target,
                approval=approval,
                machine_id=machine_id,
                hostname=link.hostname_snapshot(),
                base_url_by_meter=base_url is None and settings.cloud_base_url_by_meter,
                dashboard_origin=None if settings.cloud_dashboard_origin_chosen else ticket.dashboard_origin,
            )
        finally:
            signal.signal(signal.SIGINT, previous_handler)
    except KeyboardInterrupt:
        kept = " This machine stays paired as before." if previous is not None else ""
        err_console.print(
            f"Cancelled: nothing was written.{kept} Run `halton-meter cloud connect` again when you are ready.",
            highlight=False,
        )
        _withdraw(client, ticket)
        sys.exit(130)
    except pairing.PairingFailed as exc:
        if exc.kind in pairing.WITHDRAW_ON:
            err_console.print(escape(str(exc)), highlight=False)
            _withdraw(client, ticket)
            sys.exit(1)
        _fail(str(exc))
    except (link.PairingMismatch, ConfigEditError, OSError) as exc:
        _fail(str(exc))
    finally:
        client.close()
    if previous is not None:
        revoked, sentence = link.revoke_replaced(settings.cloud_base_url, previous.token)
        (console if revoked else err_console).print(sentence, highlight=False, markup=False)
    console.print(
        f"Approved: paired with workspace {paired.workspace_slug} ({paired.workspace_name}) as machine {machine_id}.",
        highlight=False,
        markup=False,
    )
    console.print(f"Token saved to {paths.cloud_credentials} (0600).", highlight=False)
    console.print(
        "The daemon starts syncing on its next supervisor tick (≤ 15s). Check with: halton-meter cloud status",
        highlight=False,
    )


@cloud.command(name="status")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def cloud_status(as_json: bool) -> None:
    """ACTIVE, DEGRADED, PAUSED or NOT-CONFIGURED; last sync, unsynced rows, rejected rows, last error."""
    from halton_meter.cloud import state
    from halton_meter.status import probe_daemon

    settings = _settings()
    daemon = probe_daemon(settings)
    result = state.with_daemon(
        state.load_status(settings),
        daemon.state,
        started_at=daemon.started_at,
        last_seen_at=daemon.last_seen_at,
    )
    if as_json:
        _print_json(result.to_json())
        return
    _label("State", result.state)
    if result.paused_reason:
        _label("Paused reason", result.paused_reason)
    _label("Last sync", state.ago(result.age_seconds(result.last_sync_at)))
    _label("Unsynced rows", result.unsynced_rows)
    reconciled = state.ago(result.age_seconds(result.last_reconcile_at))
    if result.last_reconcile:
        found = result.last_reconcile
        reconciled += (
            f" ({found['matched_days']} days matched, {found['resent_rows']} rows re-sent, "
            f"{len(found['differences'])} differences)"
        )
    _label("Last reconcile", reconciled)
    if result.rejected_rows:
        first = result.rejected[0][1] if result.rejected else ""
        _label("Rejected rows", f"{result.rejected_rows} set aside (newest: {first})")
    if result.degraded_reason and result.state == state.DEGRADED:
        _label("Degraded", result.degraded_reason)
    if result.last_error:
        _label("Last error", f"{result.last_error} ({state.ago(result.age_seconds(result.last_error_at))})")
    if result.problem:
        _label("Problem", result.problem)
    if result.state == state.NOT_RUNNING:
        seen = result.age_seconds(result.daemon_last_seen_at)
        since = f" (last seen {state.ago(seen)})" if seen is not None else ""
        _label("Daemon", f"stopped{since}: rows wait locally until `halton-meter start`")
    elif result.state != state.NOT_CONFIGURED and result.daemon_state == state.DAEMON_UNRESPONSIVE:
        _label("Daemon", "not answering on its port: see `halton-meter status` and the daemon log")
    hints = {
        state.PAUSED_MANUAL: "run `halton-meter cloud resume` to restart sync",
        state.PAUSED_UNAUTHORISED: "run `halton-meter cloud resume` (it checks the token); if the token is "
        "revoked, run `halton-meter cloud connect`",
        state.PAUSED_FORBIDDEN: _forbidden_advice(settings, result.workspace_slug),
    }
    if result.paused_reason in hints:
        _label("Next", hints[result.paused_reason])
    elif result.state == state.NOT_CONFIGURED and not result.problem:
        _label("Next", "run `halton-meter cloud connect` to pair this machine")


def _post_line(post) -> str:
    if post.status is None:
        text = f"POST /v1/requests/batch  →  no answer  ({post.rows} rows): {post.detail}"
    elif 200 <= post.status < 300:
        counts = f"{post.accepted} rows accepted"
        if post.duplicates:
            counts += f", {post.duplicates} duplicates"
        text = f"POST /v1/requests/batch  →  {post.status} {post.reason}  ({counts})"
    else:
        text = f"POST /v1/requests/batch  →  {post.status} {post.reason}  ({post.rows} rows): {post.detail}"
    return "  " * post.depth + text


@cloud.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def sync(as_json: bool) -> None:
    """Send unsynced rows now (the daemon also does this on its own; the cloud ignores duplicates)."""
    from halton_meter.cloud import state
    from halton_meter.cloud.client import CloudClient
    from halton_meter.cloud.sync import FORBIDDEN, UNAUTHORISED, Uploader

    settings, credentials, current, conn = _ready_to_sync()
    printer = (
        None if as_json else (lambda post: console.print(_post_line(post), highlight=False, markup=False))
    )
    try:
        with CloudClient(settings.cloud_base_url) as client:
            uploader = Uploader(
                conn,
                client,
                credentials.token,
                batch_rows=settings.cloud_batch_rows,
                batch_bytes=settings.cloud_batch_bytes,
                on_post=printer,
            )
            result = uploader.run_pass(budget_s=3600.0)
        at = state.now_utc()
        pairing_id = credentials.pairing_id
        if result.stopped is None:
            state.record_success(
                conn,
                pairing_id,
                at=at,
                accepted=result.accepted,
                duplicates=result.duplicates,
                uploaded=result.uploaded,
            )
            # The cloud took everything this pass read: whatever the worker flagged is over (it flags
            # again if its own next passes fail or fall behind).
            state.set_degraded(conn, pairing_id, None)
        else:
            if result.uploaded:
                state.record_progress(
                    conn, pairing_id, accepted=result.accepted, duplicates=result.duplicates, at=at
                )
            state.record_failure(conn, pairing_id, at=at, error=result.error or "sync failed", count=False)
            if result.stopped in (UNAUTHORISED, FORBIDDEN):
                reason = (
                    state.PAUSED_UNAUTHORISED if result.stopped == UNAUTHORISED else state.PAUSED_FORBIDDEN
                )
                state.set_paused(conn, pairing_id, reason, result.error)
    finally:
        conn.close()
    if as_json:
        _print_json(
            {
                "posts": [
                    {
                        "rows": p.rows,
                        "status": p.status,
                        "accepted": p.accepted,
                        "duplicates": p.duplicates,
                        "detail": p.detail,
                        "depth": p.depth,
                    }
                    for p in result.posts
                ],
                "synced": result.synced,
                "accepted": result.accepted,
                "duplicates": result.duplicates,
                "set_aside": [{"request_uid": uid, "reason": reason} for uid, reason in result.set_aside],
                "stopped": result.stopped,
                "error": result.error,
                "unsynced_rows": result.remaining,
            }
        )
    else:
        if not result.posts and not result.set_aside:
            console.print("Nothing to sync: 0 unsynced rows.")
        if result.set_aside:
            console.print(
                f"Set aside {len(result.set_aside)} row(s) the cloud refused: {result.set_aside[0][1]} "
                "(listed by `halton-meter cloud status --json`)",
                highlight=False,
                markup=False,
            )
        if result.stopped == UNAUTHORISED:
            err_console.print(
                "Sync paused (paused_unauthorised): run `halton-meter cloud resume`, which checks the token; "
                "if it is revoked, run `halton-meter cloud connect`.",
                highlight=False,
            )
        elif result.stopped == FORBIDDEN:
            err_console.print(
                f"Sync paused (paused_forbidden): a workspace owner removed this machine. "
                f"{_forbidden_advice(settings, current.workspace_slug)}",
                highlight=False,
            )
        elif result.stopped is not None:
            err_console.print(
                f"Could not sync: {escape(result.error or 'unknown error')}. The rows stay queued; the daemon "
                "retries with backoff.",
                highlight=False,
            )
    if result.stopped is not None:
        sys.exit(1)


@cloud.command()
@click.option(
    "--days",
    type=click.IntRange(1, 90),  # the cloud's default reconcile_max_days
    default=30,
    show_default=True,
    help="UTC days to compare, today included.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def reconcile(days: int, as_json: bool) -> None:
    """Compare this machine's rows and cost per day with the cloud's; mark what it lacks for re-sending."""
    from halton_meter.cloud import reconcile as reconciling
    from halton_meter.cloud import state
    from halton_meter.cloud.client import CloudClient, CloudError

    settings, credentials, current, conn = _ready_to_sync()
    try:
        with CloudClient(settings.cloud_base_url) as client:
            result = reconciling.reconcile(
                conn,
                client,
                credentials.token,
                machine_id=current.machine_id or "",
                days=days,
                now=state.now_utc(),
            )
        reconciling.record(conn, credentials.pairing_id, result)
    except CloudError as exc:
        _fail(f"reconcile failed: {exc}")
    finally:
        conn.close()
    if as_json:
        _print_json(result.to_json())
        return
    console.print(
        f"Reconciled {result.first_day} to {result.last_day} (UTC): {result.summary()}.", highlight=False
    )
    for day in result.differences:
        console.print(
            f"  {day.day}: meter {day.meter_rows} rows / ${day.meter_cost_usd}, cloud {day.cloud_rows} rows / "
            f"${day.cloud_cost_usd}; {day.resent_rows} to re-send, {day.cloud_only_rows} only in the cloud",
            highlight=False,
            markup=False,
        )
    if result.resent_rows:
        console.print(
            "The daemon re-sends them on its next pass (or run `halton-meter cloud sync` now).",
            highlight=False,
        )
    if result.cloud_only_rows:
        console.print(
            "Rows only in the cloud were left as they are (this machine's database was reset or copied?).",
            highlight=False,
        )


@cloud.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def pause(as_json: bool) -> None:
    """Stop sending rows to the cloud (capture continues locally)."""
    from halton_meter.cloud import state
    from halton_meter.store import open_store

    settings = _settings()
    credentials = _paired(settings)
    current = state.load_status(settings)
    conn = open_store(settings.paths.db)
    try:
        if current.paused_reason and current.paused_reason != state.PAUSED_MANUAL:
            message = f"Sync is already paused ({current.paused_reason}); left as it is."
        else:
            state.set_paused(
                conn,
                credentials.pairing_id,
                state.PAUSED_MANUAL,
                "halton-meter cloud pause",
                keep_manual=False,
            )
            message = "Cloud sync paused (paused_manual). Capture continues locally; `halton-meter cloud resume` restarts it."
    finally:
        conn.close()
    if as_json:
        _print_json(state.load_status(settings).to_json())
    else:
        console.print(message, highlight=False)


@cloud.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def resume(as_json: bool) -> None:
    """Resume sync after checking the token with the cloud (whoami)."""
    from halton_meter.cloud import state
    from halton_meter.cloud.client import CloudClient, CloudError, CloudRefused
    from halton_meter.store import open_store

    settings = _settings()
    credentials = _paired(settings)
    current = state.load_status(settings)
    was, slug = current.paused_reason, current.workspace_slug
    lines: list[str] = []
    failure: str | None = None
    unanswered: str | None = None
    conn = open_store(settings.paths.db)
    try:
        with CloudClient(settings.cloud_base_url) as client:
            try:
                identity = client.whoami(credentials.token)
            except CloudRefused as exc:
                if exc.status == 401:
                    state.set_paused(
                        conn, credentials.pairing_id, state.PAUSED_UNAUTHORISED, str(exc), keep_manual=False
                    )
                    failure = (
                        f"The token is revoked ({client.host} answered HTTP 401 to whoami): run "
                        "`halton-meter cloud connect` to pair this machine again."
                    )
                elif exc.status == 403:
                    state.set_paused(
                        conn, credentials.pairing_id, state.PAUSED_FORBIDDEN, str(exc), keep_manual=False
                    )
                    failure = (
                        f"A workspace owner removed this machine from {slug or 'the workspace'} (HTTP 403). "
                        f"{_forbidden_advice(settings, slug)}"
                    )
                else:
                    unanswered = f"{client.host} could not check the token ({exc})"
            except CloudError as exc:
                unanswered = f"could not check the token: {exc}"
            else:
                state.clear_pause(conn, credentials.pairing_id)
                lines.append(f"Token OK: workspace {identity.workspace_slug}, machine {identity.machine_id}.")
                lines.append(
                    f"Cloud sync resumed (was {was})."
                    if was
                    else "Cloud sync was not paused; nothing to resume."
                )
        if unanswered is not None:
            # The cloud did not answer: a manual pause is lifted anyway (the worker retries with
            # backoff); a pause the cloud caused stays until the cloud confirms the token.
            if was in (None, state.PAUSED_MANUAL):
                state.clear_pause(conn, credentials.pairing_id)
                lines.append(f"Warning: {unanswered}. Sync resumed anyway; the daemon retries with backoff.")
            else:
                failure = f"{unanswered}; still paused ({was}). Retry when the cloud is reachable."
    finally:
        conn.close()
    if as_json:
        _print_json({**state.load_status(settings).to_json(), "resume_error": failure})
    else:
        for line in lines:
            console.print(line, highlight=False, markup=False)
    if failure is not None:
        if not as_json:
            err_console.print(f"[bold red]error:[/] {escape(failure)}", highlight=False)
        sys.exit(1)


@cloud.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def whoami(as_json: bool) -> None:
    """Which workspace and machine the saved token belongs to (asks the cloud)."""
    from halton_meter.cloud.client import CloudClient, CloudError, CloudRefused

    settings = _settings()
    credentials = _paired(settings)
    with CloudClient(settings.cloud_base_url) as client:
        try:
            identity = client.whoami(credentials.token)
        except CloudRefused as exc:
            if exc.status == 401:
                _fail(
                    f"{client.host} rejected the token (HTTP 401): run `halton-meter cloud resume` to check it; "
                    "if it is revoked, run `halton-meter cloud connect`"
                )
            if exc.status == 403:
                _fail(
                    f"this machine was removed from its workspace (HTTP 403). {_forbidden_advice(settings, None)}"
                )
            _fail(f"{client.host} answered {exc}")
        except CloudError as exc:
            _fail(str(exc))
    if as_json:
        _print_json({**identity.to_json(), "base_url": settings.cloud_base_url})
        return
    for name, value in (
        ("Workspace", identity.workspace_slug),
        ("Machine id", identity.machine_id),
        ("Hostname", identity.hostname),
    ):
        console.print(f"{name + ':':<12}{value}", highlight=False, markup=False)


@cloud.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def disconnect(as_json: bool) -> None:
    """Revoke the token at the cloud, then wipe it locally and set cloud.enabled = false."""
    from halton_meter.cloud import link, state
    from halton_meter.cloud.client import CloudClient, CloudError, CloudRefused, host_of
    from halton_meter.cloud.config_table import ConfigEditError
    from halton_meter.cloud.credentials import CredentialsProblem, load_credentials

    settings = _settings()
    host = host_of(settings.cloud_base_url)
    try:
        credentials = load_credentials(settings.paths)
    except CredentialsProblem as exc:
        err_console.print(f"[yellow]warning:[/] {escape(str(exc))}", highlight=False)
        credentials = None
    slug = state.load_status(settings).workspace_slug
    revoked: str
    warning: str | None = None
    if credentials is None:
        revoked = "no_token"
        if not as_json:
            console.print("No token on this machine: nothing to revoke.")
    else:
        if not as_json:
            console.print(f"Revoking token at {host}…", highlight=False)
        with CloudClient(settings.cloud_base_url) as client:
            try:
                client.disconnect(credentials.token)
                revoked = "revoked"
            except CloudRefused as exc:
                if exc.status == 401:
                    revoked = "already_revoked"
                else:
                    revoked = "failed"
                    warning = f"{host} refused to revoke the token ({exc})"
            except CloudError as exc:
                revoked = "failed"
                warning = str(exc)
        if not as_json:
            if revoked == "revoked":
                console.print("Token revoked.")
            elif revoked == "already_revoked":
                console.print("Token was already revoked.")
            elif warning is not None:
                err_console.print(
                    f"[bold red]Could not revoke the token:[/] {escape(warning)}", highlight=False
                )
    try:
        link.wipe_local(settings.paths)
    except (ConfigEditError, OSError) as exc:
        _fail(f"could not wipe the local credentials: {exc}")
    advice = (
        f"the token stays valid until you revoke this machine at {_devices_page(settings, slug)}"
        if revoked == "failed"
        else None
    )
    if as_json:
        _print_json(
            {
                "revoked": revoked,
                "error": warning,
                "warning": advice,
                "enabled": False,
                "credentials_wiped": True,
            }
        )
    else:
        console.print("Local: cloud.enabled = false; credentials wiped.")
        if advice is not None:
            err_console.print(f"[bold yellow]Warning:[/] {escape(advice)}.", highlight=False)
        console.print("Capture continues locally; `halton-meter report` keeps working.", highlight=False)
    if revoked == "failed":
        sys.exit(1)


if __name__ == "__main__":
    main()
