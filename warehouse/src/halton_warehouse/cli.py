"""`halton-warehouse`: apply migrations, or serve the embedded warehouse."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from halton_warehouse.client import connect
from halton_warehouse.migrate import migrate as apply_migrations
from halton_warehouse.settings import EMBEDDED_PORT, WarehouseSettings


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log every query and migration step.")
def main(verbose: bool) -> None:
    """Halton's ClickHouse warehouse."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@main.command()
@click.option("--url", envvar="HALTON_CLICKHOUSE_URL", help="Warehouse URL (default: the embedded server).")
def migrate(url: str | None) -> None:
    """Apply warehouse migrations that are not applied yet (safe to run twice)."""
    settings = WarehouseSettings(**({"clickhouse_url": url} if url else {}))
    client = connect(settings.clickhouse_url)
    applied = apply_migrations(client, settings.databases, settings.clickhouse_cluster)
    click.echo(
        f"applied {len(applied)} migration(s)"
        + (f": {', '.join(f'{v:04d}' for v in applied)}" if applied else "")
    )


@main.command()
@click.option("--data-dir", type=click.Path(path_type=Path), required=True, help="chDB data directory.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (loopback by default).")
@click.option("--port", default=EMBEDDED_PORT, show_default=True, type=int)
@click.option("--user", default=None, help="Require this user name (with --password).")
@click.option("--password", default=None, envvar="HALTON_WAREHOUSE_PASSWORD")
def serve(data_dir: Path, host: str, port: int, user: str | None, password: str | None) -> None:
    """Serve the ClickHouse HTTP interface over an embedded chDB engine."""
    from halton_warehouse.server import run

    run(data_dir, host=host, port=port, user=user, password=password)
