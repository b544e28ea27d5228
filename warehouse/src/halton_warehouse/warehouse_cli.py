"""`halton-warehouse`: apply migrations, or serve the embedded warehouse."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import click

from halton_warehouse.logins import CredentialsError, credentials_path, read_logins, with_login
from halton_warehouse.migrate import migrate as apply_migrations
from halton_warehouse.warehouse_client import connect
from halton_warehouse.warehouse_settings import EMBEDDED_PORT, WarehouseSettings


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
@click.option(
    "--allowed-host",
    multiple=True,
    help="Another name clients may use for this server (repeatable; loopback names always work).",
)
def serve(data_dir: Path, host: str, port: int, allowed_host: tuple[str, ...]) -> None:
    """Serve the ClickHouse HTTP interface over an embedded chDB engine.

    Its logins are made on the first start and kept in DATA_DIR/credentials.json (0600).
    """
    from halton_warehouse.server.listener import run

    run(data_dir, host=host, port=port, extra_hosts=allowed_host)


@main.command()
@click.option(
    "--warehouse-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="The embedded warehouse's data directory (default: the one `halton-cloud up` uses, "
    "$HALTON_DATA_DIR/warehouse or ~/.halton-cloud/warehouse).",
)
@click.option("--port", default=EMBEDDED_PORT, show_default=True, type=int, help="The port it serves on.")
@click.option("--reader", is_flag=True, help="Only the read-only login, for analysts' tools.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def credentials(warehouse_dir: Path | None, port: int, reader: bool, as_json: bool) -> None:
    """The embedded warehouse's logins: `halton` for the cloud's own components, `analyst` (read-only)."""
    directory = warehouse_dir or WarehouseSettings().embedded_dir
    try:
        logins = read_logins(directory)
    except CredentialsError as error:
        raise click.ClickException(str(error)) from None
    if logins is None:
        raise click.ClickException(
            f"no warehouse logins in {credentials_path(directory)}: the embedded warehouse makes them on its "
            "first start (`halton-cloud up` or `halton-warehouse serve --data-dir DIR`)"
        )
    address = f"http://127.0.0.1:{port}"
    roles = [("reader", logins.reader)] if reader else [("admin", logins.admin), ("reader", logins.reader)]
    if as_json:
        click.echo(
            json.dumps(
                {
                    role: {"user": login.user, "password": login.password, "url": with_login(address, login)}
                    for role, login in roles
                },
                indent=2,
            )
        )
        return
    click.echo(f"# from {credentials_path(directory)}")
    for role, login in roles:
        what = (
            "read-only: SELECT, SHOW, DESCRIBE" if role == "reader" else "everything: the cloud's own login"
        )
        click.echo(f"{role:7} user {login.user}  password {login.password}  ({what})")
        click.echo(f"        {with_login(address, login)}")
