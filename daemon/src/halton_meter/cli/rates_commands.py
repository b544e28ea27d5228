"""``halton-meter rates …``: the price catalogue this meter prices with (``show``), and updating it
without an upgrade (``diff``, ``update``).

What a model costs is rendered by ``catalogue/display.py``, the same views the cloud's pricing page
renders, so the two agree; updates are done by :mod:`halton_meter.rate_updates`. The catalogue, rich's
tables and everything else load inside the commands.
"""

from __future__ import annotations

import difflib
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

import click
from rich.markup import escape

from halton_meter.cli.terminal import console, fail, print_json, settings_or_exit

if TYPE_CHECKING:
    from halton_meter.catalogue import Catalogue
    from halton_meter.catalogue.diff import CatalogueDiff
    from halton_meter.catalogue.display import ModelView
    from halton_meter.settings import Settings

SUGGESTIONS = 5
SOURCE_HELP = "A catalogue file or an https URL (default: the paired cloud's GET /v1/rates)."


def _catalogue() -> Catalogue:
    from halton_meter.catalogue import active_catalogue

    return active_catalogue(settings_or_exit().paths.catalogue)


def _today() -> date:
    # Calls are priced by their UTC day, so "in force today" is today in UTC.
    return datetime.now(UTC).date()


@click.group()
def rates() -> None:
    """The price catalogue: which rates price your calls, from when and from where; update it."""


@rates.command("show")
@click.argument("model", required=False, metavar="[PROVIDER/MODEL]")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (amounts as decimal strings).")
def show(model: str | None, as_json: bool) -> None:
    """The rates in force today, with the date each took effect and its source.

    Without an argument: the catalogue's version and sources, and every model's standard input and
    output rates. With PROVIDER/MODEL (e.g. anthropic/claude-sonnet-4-6-20260101, resolved as the meter
    resolves a call's model): every rate, size tier, mode, regional multiplier and per-call fee.
    """
    from halton_meter.catalogue.display import catalogue_json, model_view

    catalogue = _catalogue()
    today = _today()
    if model is None:
        document = catalogue_json(catalogue, today)
        if as_json:
            print_json(document)
        else:
            _print_catalogue(document)
        return
    view = model_view(resolve(catalogue, model), today)
    if as_json:
        print_json({"catalogue_version": catalogue.version, **view.to_json()})
    else:
        _print_model(view, catalogue.version)


def resolve(catalogue: Catalogue, argument: str):
    """The catalogue entry ``PROVIDER/MODEL`` names; exits 2 naming what is unknown, with close ids."""
    provider, slash, name = argument.partition("/")
    providers = sorted(catalogue.providers())
    if not slash or not provider or not name:
        fail(f"give the model as PROVIDER/MODEL (providers: {', '.join(providers)}), not {argument!r}", 2)
    provider = provider.lower()
    if provider not in providers:
        fail(f"unknown provider {provider!r}: the catalogue knows {', '.join(providers)}", 2)
    entry = catalogue.find(provider, name)
    if entry is None:
        ids = [e.id for e in catalogue.models if e.provider == provider]
        # Ids that extend what was typed (gpt-6 → gpt-6-sol) first, then ones spelled alike.
        close = [i for i in ids if i.startswith(name.lower())]
        close += difflib.get_close_matches(name.lower(), ids, n=SUGGESTIONS, cutoff=0.5)
        close = list(dict.fromkeys(close))[:SUGGESTIONS]
        hint = f"; did you mean {', '.join(f'{provider}/{c}' for c in close)}?" if close else ""
        fail(
            f"{provider}/{name} is not in price catalogue {catalogue.version}{hint}"
            " (a newer catalogue may know it: halton-meter rates update)",
            2,
        )
    return entry


def _print_catalogue(document: dict[str, Any]) -> None:
    from rich.table import Table

    sources = ", ".join(
        f"{s['name']} {s['version']}" + (f" ({s['role']})" if s["role"] else "")
        for s in document["generated_from"]
    )
    counts = ", ".join(f"{p} {n}" for p, n in document["models_per_provider"].items())
    console.print(f"[bold]Price catalogue[/] {escape(document['version'])}", highlight=False)
    console.print(f"  sources: {escape(sources)}", highlight=False)
    console.print(f"  models: {counts}", highlight=False)
    table = Table(title=f"standard rates in force on {document['on']} (USD per million tokens)")
    # Folded, never cut with an ellipsis: the id is what to type after `rates show`.
    for column in ("model", "input", "output", "since", "source"):
        justify = "right" if column in ("input", "output") else "left"
        table.add_column(column, justify=justify, overflow="fold")
    for row in document["models"]:
        table.add_row(
            f"{row['provider']}/{row['id']}",
            row["input"] or "—",
            row["output"] or "—",
            row["from"] or "date unknown",
            row["source"],
        )
    console.print(table)
    console.print("Details of one model: halton-meter rates show PROVIDER/MODEL", highlight=False)


def _print_model(view: ModelView, version: str) -> None:
    title = f"{view.key}" + (f" ({view.name})" if view.name else "")
    console.print(
        f"[bold]{escape(title)}[/]  catalogue {escape(version)}, in force on {view.day}", highlight=False
    )
    console.print(f"  priced by {escape(view.source)}", highlight=False)

    def entry(label: str, price) -> None:
        console.print(f"[bold]{label}[/] ({price.since_text}, {escape(price.source)})", highlight=False)
        for line in price.lines():
            console.print(f"  {escape(line)}", highlight=False)

    entry("standard", view.standard)
    for mode in view.modes:
        if mode.price is None:
            console.print(f"[bold]{mode.mode}[/]: no published price on {view.day}", highlight=False)
        else:
            entry(mode.mode, mode.price)
    for line in view.region_lines():
        console.print(escape(line), highlight=False)
    for item in view.scheduled:
        entry(f"{item.mode or 'standard'}, scheduled", item.price)


def _read(settings: Settings, source: str | None) -> tuple[Any, str]:
    from halton_meter.rate_updates import UpdateError, read_cloud, read_source

    try:
        if source is not None:
            return read_source(source)
        return read_cloud(settings), f"{settings.cloud_base_url}/v1/rates"
    except UpdateError as exc:
        fail(str(exc))


def _print_diff(diff: CatalogueDiff) -> None:
    console.print(escape(diff.summary()), highlight=False)
    for line in diff.lines():
        console.print(f"  {escape(line)}", highlight=False)


@rates.command()
@click.option("--from", "source", metavar="FILE_OR_URL", help=SOURCE_HELP)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def update(source: str | None, as_json: bool) -> None:
    """Install a newer price catalogue and price the calls recorded without a price.

    The catalogue is validated first: one that fails is refused naming the entry, and the one in force
    stays. A running daemon uses the new catalogue from its next call.
    """
    from halton_meter.rate_updates import UpdateError, install

    settings = settings_or_exit()
    doc, where = _read(settings, source)
    try:
        result = install(settings, doc, where)
    except UpdateError as exc:
        fail(str(exc))
    if as_json:
        print_json(result.to_json())
        return
    _print_diff(result.diff)
    if not result.installed:
        console.print("Already in force: nothing installed.", highlight=False)
        return
    console.print(f"Installed catalogue {escape(result.diff.new_version)}.", highlight=False)
    if result.repriced is not None:
        summary = result.repriced
        console.print(
            f"Unpriced calls: {summary.examined} looked at, {summary.newly_priced} now priced "
            f"({summary.examined - summary.newly_priced - summary.skipped_no_usage} still without a price).",
            highlight=False,
        )


@rates.command()
@click.option("--from", "source", metavar="FILE_OR_URL", help=SOURCE_HELP)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def diff(source: str | None, as_json: bool) -> None:
    """Show what `rates update` would change; changes nothing."""
    from halton_meter.rate_updates import UpdateError, preview

    settings = settings_or_exit()
    doc, where = _read(settings, source)
    try:
        changes = preview(settings.paths, doc, where)
    except UpdateError as exc:
        fail(str(exc))
    if as_json:
        print_json(changes.to_json())
    else:
        _print_diff(changes)
