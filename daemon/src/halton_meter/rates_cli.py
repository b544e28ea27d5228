"""``halton-meter rates``: the price catalogue this meter prices with, and updating it without an upgrade.

The commands only parse options and print; the work is in :mod:`halton_meter.rate_updates`.
"""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.markup import escape

from halton_meter.settings import Settings, SettingsError, load_settings

# The same terminal conventions as halton_meter.cli (which registers this group; importing it from here
# would make the two modules import each other).
console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)

SOURCE_HELP = "A catalogue file or an https URL (default: the paired cloud's GET /v1/rates)."


def _fail(message: str, code: int = 1) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    sys.exit(code)


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        _fail(str(exc), 2)


def _print_json(document: Any) -> None:
    click.echo(json.dumps(document, indent=2, default=str))


@click.group()
def rates() -> None:
    """The price catalogue: show it, see what an update would change, update it."""


def _read(settings, source: str | None):
    from halton_meter.rate_updates import UpdateError, read_cloud, read_source

    try:
        if source is not None:
            return read_source(source)
        return read_cloud(settings), f"{settings.cloud_base_url}/v1/rates"
    except UpdateError as exc:
        _fail(str(exc))


def _print_diff(diff) -> None:
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

    settings = _settings()
    doc, where = _read(settings, source)
    try:
        result = install(settings, doc, where)
    except UpdateError as exc:
        _fail(str(exc))
    if as_json:
        _print_json(result.to_json())
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

    settings = _settings()
    doc, where = _read(settings, source)
    try:
        changes = preview(settings.paths, doc, where)
    except UpdateError as exc:
        _fail(str(exc))
    if as_json:
        _print_json(changes.to_json())
    else:
        _print_diff(changes)
