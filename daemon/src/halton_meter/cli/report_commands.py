"""``report`` and ``reprice``: what the calls recorded on this machine cost, read from its database."""

from __future__ import annotations

import sys
from datetime import datetime
from decimal import Decimal

import click
from rich.markup import escape
from rich.text import Text

from halton_meter.cli.terminal import console, fail, print_json, settings_or_exit
from halton_meter.settings import Settings


def _period_parameters(fn):
    """The period a command looks at: a named one, or --from/--to days."""
    fn = click.option(
        "--to", "to_", type=click.DateTime(["%Y-%m-%d"]), help="Last day (inclusive), YYYY-MM-DD."
    )(fn)
    fn = click.option("--from", "from_", type=click.DateTime(["%Y-%m-%d"]), help="First day, YYYY-MM-DD.")(fn)
    return click.argument(
        "period",
        required=False,
        type=click.Choice(["today", "yesterday", "7d", "30d", "this-month", "last-month", "all"]),
    )(fn)


def _period(name: str | None, from_: datetime | None, to_: datetime | None):
    from halton_meter.report import PeriodError, parse_period

    try:
        return parse_period(name, from_.date() if from_ else None, to_.date() if to_ else None)
    except PeriodError as exc:
        fail(str(exc), 2)


def _readonly_db(settings: Settings):
    from halton_meter.store import StoreError, connect

    try:
        return connect(settings.paths.db, readonly=True)
    except StoreError as exc:
        fail(str(exc))


@click.command()
@_period_parameters
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
        fail("choose one of --json and --csv", 2)
    settings = settings_or_exit()
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
        print_json(result.to_json())
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


@click.command()
@_period_parameters
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

    settings = settings_or_exit()
    chosen = _period(period or "all", from_, to_) if (period or from_ or to_) else None
    try:
        pricebook = prices_in_force(settings)
    except RatesFileError as exc:
        fail(str(exc))
    if not settings.paths.db.exists():
        fail(f"{settings.paths.db} does not exist yet: run `halton-meter init`")
    try:
        conn = open_store(settings.paths.db)
    except StoreError as exc:
        fail(str(exc))
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
        print_json(summary.to_json())
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
