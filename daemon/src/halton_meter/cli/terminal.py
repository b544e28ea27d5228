"""What every command shares on the terminal: the two consoles, failing with a message and an exit code,
JSON output, and the settings (a bad config.toml exits 2 with what is wrong)."""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.markup import escape

from halton_meter.settings import Settings, SettingsError, load_settings

# soft_wrap: paths and commands must stay copy-pasteable, not folded at the terminal width.
console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)


def fail(message: str, code: int = 1) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    sys.exit(code)


def print_json(document: Any) -> None:
    click.echo(json.dumps(document, indent=2, default=str))


def settings_or_exit(port: int | None = None) -> Settings:
    try:
        return load_settings(port=port)
    except SettingsError as exc:
        fail(str(exc), 2)
