"""``halton-meter``: the command line. It owns the terminal; everything else logs.

Heavy modules (mitmproxy, pricing data) are imported inside the commands that need them, so
``status`` and ``report`` start fast.
"""

from __future__ import annotations

import contextlib
import csv
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
from rich.table import Table
from rich.text import Text

from halton_meter import __version__
from halton_meter.paths import HOME_ENV, MeterPaths
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
@click.version_option(__version__, prog_name="halton-meter")
def main() -> None:
    """Halton Meter: see what every LLM API call costs, on this machine.

    The daemon is a local proxy on 127.0.0.1:8090. Point tools at it with HTTPS_PROXY (and trust the
    meter's CA: `halton-meter ca`) or with a base URL such as
    ANTHROPIC_BASE_URL=http://127.0.0.1:8090/anthropic. Files live in ~/.halton-meter
    (HALTON_METER_HOME to move them).
    """


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
        if state and state.get("pid") == child.pid:
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
        line = Text.assemble(("● stopped", "bold red"), "  run `halton-meter start`")
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
    table.add_row("cloud", result.cloud_state)
    if result.db_problem:
        table.add_row("database", Text(result.db_problem, style="red"))
    console.print(f"[bold]Halton Meter {__version__}[/]  [dim]{result.home}[/]")
    console.print(table)


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
    type=click.Choice(["project", "model", "provider", "day"]),
    help="Only these breakdowns (repeatable). Default: all four.",
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
    from halton_meter.report import CSV_COLUMNS, DIMENSIONS, csv_rows, spend_report

    if as_json and as_csv:
        _fail("choose one of --json and --csv", 2)
    settings = _settings()
    chosen = _period(period, from_, to_)
    conn = _readonly_db(settings)
    try:
        result = spend_report(conn, chosen, tuple(by) or tuple(DIMENSIONS))
    finally:
        conn.close()
    if as_json:
        _print_json(result.to_json())
        return
    if as_csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        writer.writerows(csv_rows(result))
        return
    _print_report(result)


def _print_report(result) -> None:
    from halton_meter.report import format_usd

    totals = result.totals
    console.print(f"[bold]Spend {result.period.label}[/]")
    summary = f"{format_usd(totals.cost_usd)} over {totals.calls} calls"
    if totals.unpriced_calls:
        summary += f"  [yellow]+ {totals.unpriced_calls} unpriced[/]"
    if totals.errors:
        summary += f"  [dim]({totals.errors} errors)[/]"
    console.print(summary)
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
@click.option("--dry-run", is_flag=True, help="Show what would change; write nothing.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def reprice(
    period: str | None, from_: datetime | None, to_: datetime | None, dry_run: bool, as_json: bool
) -> None:
    """Re-price stored calls with the current prices (after a genai-prices upgrade or a rates.json edit).

    PERIOD defaults to all calls. Changed rows are marked for re-sync to the cloud.

    rates.json (in the meter's home) overrides prices, in USD per million tokens:
    {"format": 1, "models": {"openai/gpt-4.1": {"input": "1.60", "output": "6.40", "cache_read": "0.40"}}}
    """
    from rich.progress import Progress

    from halton_meter.pricing import PriceBook, RatesFileError
    from halton_meter.report import format_usd
    from halton_meter.reprice import reprice as run_reprice
    from halton_meter.reprice import total_usd
    from halton_meter.store import StoreError, open_store

    settings = _settings()
    chosen = _period(period or "all", from_, to_) if (period or from_ or to_) else None
    try:
        pricebook = PriceBook(settings.pricing_overrides)
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
            summary = run_reprice(conn, pricebook, chosen, dry_run=dry_run)
        else:
            with Progress(transient=True, console=console) as progress:
                task = progress.add_task("re-pricing", total=None)
                summary = run_reprice(
                    conn,
                    pricebook,
                    chosen,
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

    paths = _settings().paths
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
    console.print("\nThen send calls through the meter: export HTTPS_PROXY=http://127.0.0.1:8090")
    console.print(
        "(or skip the CA entirely with base URLs, e.g. ANTHROPIC_BASE_URL=http://127.0.0.1:8090/anthropic)"
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


if __name__ == "__main__":
    main()
