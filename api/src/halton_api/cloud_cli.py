"""`halton-cloud`: run the whole cloud on one machine (`up`), serve only the API (`serve`, production), apply
migrations (`migrate`), load a demo (`demo`).

`up` starts what is not configured: the embedded warehouse server unless `HALTON_CLICKHOUSE_URL` is set,
a PostgreSQL from the pgserver wheel unless `HALTON_DATABASE_URL` is set; then the pipelines (Dagster as
deployed, `halton_api.orchestration`, unless --no-dagster; with --demo, once a first marts build of the
demo is done: `halton_api.dagster_processes`). It migrates both stores, serves the API with
uvicorn in the foreground, and on Ctrl-C or SIGTERM stops everything it started, waiting until every process
is gone. With `--demo` it loads the demo workspace in a background `halton-cloud demo` process once the API
serves, and says "Ready" once the marts hold it (`halton_api.first_run`). `--workers N` (on `up` and `serve`)
runs N API processes on the one port; they keep nothing to themselves that another must see (see
`halton_api.app.create_app`).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import click
import psycopg
from rich.console import Console

from halton_api.cloud_settings import CloudSettings, SettingsError

if TYPE_CHECKING:
    from halton_api.dagster_processes import DagsterProcesses
    from halton_api.first_run import FirstRunWatch
    from halton_warehouse.migrate import Migration

log = logging.getLogger(__name__)
console = Console(stderr=True, soft_wrap=True)

DEFAULT_PORT = 8000
DEFAULT_WAREHOUSE_PORT = 8123
DEFAULT_DAGSTER_PORT = 3000
DEFAULT_DEMO_REQUESTS = 200_000
WORKERS = click.IntRange(min=1, max=64)
WORKERS_HELP = (
    "API processes on the one port (uvicorn workers); they share everything through PostgreSQL. About one "
    "per core: ingestion is CPU-bound."
)


class _Stop(Exception):
    """Ctrl-C or SIGTERM arrived: unwind, stopping what was started."""


def _stop_on_signal(signum: int, frame: FrameType | None) -> None:
    raise _Stop(signal.Signals(signum).name)


def _settings(**overrides: object) -> CloudSettings:
    try:
        return CloudSettings(**{k: v for k, v in overrides.items() if v is not None})
    except (SettingsError, ValueError) as error:
        raise click.ClickException(str(error)) from None


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log debug details.")
def main(verbose: bool) -> None:
    """Halton Meter Cloud: ingestion, workspaces, dashboards and the JSON API."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not verbose:  # pgserver narrates every initdb and pg_ctl call at INFO
        logging.getLogger("pgserver").setLevel(logging.WARNING)


def _migrate_all(settings: CloudSettings, database_url: str, warehouse_url: str) -> None:
    from clickhouse_connect.driver.exceptions import OperationalError as WarehouseUnreachable

    from halton_api import postgres
    from halton_warehouse import connect
    from halton_warehouse.migrate import load_migrations
    from halton_warehouse.migrate import migrate as migrate_warehouse

    try:
        applied = postgres.migrate(database_url)
    except psycopg.OperationalError as error:
        raise click.ClickException(f"cannot reach the control-plane database: {error}") from None
    console.print(f"control plane: {_applied(applied, postgres.load_migrations())}")
    try:
        client = connect(warehouse_url)
        try:
            applied = migrate_warehouse(
                client, settings.warehouse.databases, settings.warehouse.clickhouse_cluster
            )
        finally:
            client.close()
    except WarehouseUnreachable as error:
        raise click.ClickException(
            f"cannot reach the warehouse at {warehouse_url} ({error}): start it with `halton-cloud up` "
            "or point HALTON_CLICKHOUSE_URL at a running server"
        ) from None
    console.print(f"warehouse: {_applied(applied, load_migrations())}")


def _applied(versions: list[int], migrations: list[Migration]) -> str:
    """What a migrate step did, in words that leave no false gap: the numbers never used are named as such
    ("0001, 0002, 0003, 0005" alone reads like a skipped migration)."""
    newest = migrations[-1] if migrations else None
    if not versions:
        return (
            f"up to date ({len(migrations)} migrations, newest {newest.version:04d} {newest.name})"
            if newest
            else "up to date"
        )
    names = {m.version: m.name for m in migrations}
    unused = sorted(set(range(1, newest.version + 1)) - set(names)) if newest else []
    gaps = (
        f"; {', '.join(f'{v:04d}' for v in unused)} {'was' if len(unused) == 1 else 'were'} never used"
        if unused
        else ""
    )
    if len(versions) == len(migrations):
        return f"applied all {len(versions)} migrations, {versions[0]:04d} to {versions[-1]:04d}{gaps}"
    listed = ", ".join(f"{v:04d} {names.get(v, '')}".rstrip() for v in versions)
    return f"applied {len(versions)} new of {len(migrations)} migrations: {listed}"


@main.command()
@click.option("--data-dir", type=click.Path(path_type=Path), envvar="HALTON_DATA_DIR", default=None)
def migrate(data_dir: Path | None) -> None:
    """Apply control-plane and warehouse migrations (safe to run twice, or from two machines at once)."""
    from halton_api import postgres

    settings = _settings(data_dir=data_dir)
    with ExitStack() as stack:
        database_url = settings.database_url or stack.enter_context(
            postgres.embedded_postgres(settings.data_dir)
        )
        _migrate_all(settings, database_url, settings.warehouse.clickhouse_url)


@main.command()
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    envvar="HALTON_DATA_DIR",
    default=None,
    help="Where the embedded stores live (default ~/.halton-cloud).",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address the API binds (the embedded warehouse stays on 127.0.0.1).",
)
@click.option(
    "--port", default=DEFAULT_PORT, show_default=True, type=int, help="API port (0: any free port)."
)
@click.option(
    "--warehouse-port",
    default=DEFAULT_WAREHOUSE_PORT,
    show_default=True,
    type=int,
    help="Embedded warehouse port (0: any free port); ignored when HALTON_CLICKHOUSE_URL is set.",
)
@click.option("--demo/--no-demo", default=False, help="Load the demo workspace in the background once up.")
@click.option(
    "--demo-requests",
    default=DEFAULT_DEMO_REQUESTS,
    show_default=True,
    type=click.IntRange(min=1),
    help="How many demo requests --demo sends.",
)
@click.option(
    "--dagster/--no-dagster",
    default=True,
    show_default=True,
    help="Run the pipelines (Dagster's code server, daemon and UI on PostgreSQL, DAGSTER_HOME under the data "
    "dir): marts built after ingestion, "
    "billing pulls, prices, recommendations. --no-dagster leaves them out (then `halton-dbt build` by hand).",
)
@click.option(
    "--dagster-port",
    default=DEFAULT_DAGSTER_PORT,
    show_default=True,
    type=click.IntRange(min=0, max=65535),
    help="Dagster UI port on 127.0.0.1 (0: any free port).",
)
@click.option("--workers", default=1, show_default=True, type=WORKERS, help=WORKERS_HELP)
def up(
    data_dir: Path | None,
    host: str,
    port: int,
    warehouse_port: int,
    demo: bool,
    demo_requests: int,
    dagster: bool,
    dagster_port: int,
    workers: int,
) -> None:
    """Start the cloud on this machine and stay in the foreground until Ctrl-C or SIGTERM."""
    started_at = time.monotonic()
    verbose = logging.getLogger().level <= logging.DEBUG
    if not verbose:  # before the imports below: WeasyPrint narrates while the app's stylesheets load
        _product_lines_only()
    import uvicorn

    from halton_api import postgres
    from halton_api.app import create_app
    from halton_api.first_run import FirstRunWatch
    from halton_warehouse import WarehouseSettings

    settings = _settings(data_dir=data_dir)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    previous = {sig: signal.signal(sig, _stop_on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with ExitStack() as stack:
            warehouse_url = settings.warehouse.clickhouse_url
            warehouse_note = ""
            if "HALTON_CLICKHOUSE_URL" not in os.environ:
                from halton_warehouse.embedded import start_embedded

                console.print("starting the embedded warehouse…")
                server = stack.enter_context(
                    start_embedded(
                        settings.warehouse.embedded_dir,
                        # Loopback whatever --host says: the warehouse is this machine's, not the network's.
                        host="127.0.0.1",
                        port=warehouse_port,
                        log_path=settings.data_dir / "warehouse.log",
                    )
                )
                warehouse_url = server.url
                from halton_warehouse.logins import credentials_path

                warehouse_note = (
                    f"  (logins, the read-only analyst's too: {credentials_path(server.data_dir)})"
                )
            database_url = settings.database_url
            if database_url is None:
                console.print("starting the embedded PostgreSQL…")
                database_url = stack.enter_context(postgres.embedded_postgres(settings.data_dir))
            pipelines = (
                _dagster(settings, database_url, warehouse_url, dagster_port, first_build=demo)
                if dagster
                else None
            )
            if pipelines is not None:  # first: loading Dagster takes longest, and needs no migrated store
                stack.callback(pipelines.stop)
                pipelines.start()
            _migrate_all(settings, database_url, warehouse_url)
            warehouse = settings.warehouse.model_copy(update={"clickhouse_url": warehouse_url})
            app_settings = settings.model_copy(update={"database_url": database_url, "warehouse": warehouse})
            assert isinstance(app_settings.warehouse, WarehouseSettings)
            loader = (
                _DemoLoader(demo_requests, database_url, warehouse_url, settings.data_dir) if demo else None
            )
            if loader is not None:
                stack.callback(loader.stop)
            watch = (
                FirstRunWatch(
                    loader=lambda: loader.process,
                    warehouse_url=warehouse_url,
                    databases=warehouse.databases,
                    pipelines=pipelines,
                    final_line=lambda: _ready_line(loader),
                    say=console.print,
                    started_at=started_at,
                )
                if loader is not None
                else None
            )
            if watch is not None:
                stack.callback(watch.stop)
            announce = _Announcement(
                host, _redact(warehouse_url) + warehouse_note, database_url, loader, watch
            )
            if workers > 1:
                _run_workers(
                    app_settings, host, port, workers, log_level="debug" if verbose else "warning",
                    announce=announce,
                )  # fmt: skip
                console.print("stopped everything halton-cloud started")
                return
            config = uvicorn.Config(
                create_app(app_settings),
                host=host,
                port=port,
                log_level="debug" if verbose else "warning",
                lifespan="on",
                access_log=False,
                **app_settings.uvicorn_options(),
            )
            server_ = uvicorn.Server(config)
            _announce_when_started(server_, announce)
            server_.run()
            if not server_.started:
                raise click.ClickException(f"the API could not start on {host}:{port} (see the log above)")
    except _Stop as stop:
        console.print(f"{stop}: stopped everything halton-cloud started")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _product_lines_only() -> None:
    """`up` talks through its own console lines: library chatter (WeasyPrint's progress, uvicorn's start-up,
    per-migration and per-server log lines that the summary lines repeat, pgserver's XDG_RUNTIME_DIR note)
    stays out of the terminal unless -v asks for it. Warnings and errors still show."""
    logging.getLogger().setLevel(logging.WARNING)
    logging.getLogger("halton_api.cloud_settings").setLevel(
        logging.INFO
    )  # "generated a development secret key"
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address the API binds.")
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=int, help="API port.")
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
)
@click.option("--workers", default=1, show_default=True, type=WORKERS, help=WORKERS_HELP)
def serve(host: str, port: int, log_level: str, workers: int) -> None:
    """Serve only the API, on the stores HALTON_DATABASE_URL and HALTON_CLICKHOUSE_URL name (production).

    Control-plane migrations run at start-up; run `halton-cloud migrate` for the warehouse before rolling
    out. Forwarded headers are believed only from HALTON_FORWARDED_ALLOW_IPS (a plain `uvicorn` command
    would believe them from any loopback peer), and slow clients are cut off (HALTON_HTTP_*).
    """
    import uvicorn

    settings = _settings()
    uvicorn.run(
        "halton_api.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        log_level=log_level,
        lifespan="on",
        workers=workers,
        **settings.uvicorn_options(),
    )


@dataclass
class _Announcement:
    """What `up` says once the API answers: where to go, the stores, and the demo and first-run watch it
    then starts. `warehouse` is what to say of the warehouse: its address, password redacted, and where its
    logins are."""

    host: str
    warehouse: str
    database_url: str
    loader: _DemoLoader | None = None
    watch: FirstRunWatch | None = None

    def say(self, bound: int, settings: CloudSettings) -> None:
        base = f"http://{self.host}:{bound}"
        console.print(f"[bold green]Halton Meter Cloud is up[/] at {base}")
        console.print(f"  sign up:    {base}/signup")
        console.print(f"  health:     {base}/healthz")
        console.print(f"  API docs:   {base}/docs  (schema: {base}/openapi.json)")
        console.print(f"  warehouse:  {self.warehouse}")
        console.print(f"  postgres:   {_redact(self.database_url)}")
        console.print(f"  proxies:    {_trusted_proxies(settings)}")
        if self.loader is not None:
            from halton_api.demo import DEMO_PASSWORD

            console.print(
                f"  demo:       sign in at {base}/signin as [bold]ada@acme.example[/] / [bold]{DEMO_PASSWORD}[/]"
                f" ({self.loader.requests:,} requests loading in the background)"
            )
            self.loader.start(f"http://127.0.0.1:{bound}" if self.host in ("0.0.0.0", "::") else base, base)
        if self.watch is not None:
            self.watch.start()
        console.print("Press Ctrl-C to stop.")
        sys.stderr.flush()


def _announce_when_started(server, announce: _Announcement) -> None:
    """Print where to go once uvicorn is listening (the port is known only then when --port 0)."""
    startup = server.startup

    async def startup_then_announce(sockets=None) -> None:
        await startup(sockets=sockets)
        if not server.started:
            return
        bound = server.servers[0].sockets[0].getsockname()[1] if server.servers else None
        if "HALTON_PUBLIC_URL" not in os.environ:  # links (invitations) should point at this server
            state = server.config.app.state
            state.settings = state.settings.model_copy(
                update={"public_url": f"http://{announce.host}:{bound}"}
            )
        announce.say(bound, server.config.app.state.settings)

    server.startup = startup_then_announce


def _run_workers(
    settings: CloudSettings, host: str, port: int, workers: int, *, log_level: str, announce: _Announcement
) -> None:
    """The API in `workers` processes sharing one listening socket (uvicorn's supervisor, which restarts a
    worker that dies), until Ctrl-C or SIGTERM: the supervisor takes both signals, stops every worker and
    returns, and `up` then stops the rest as usual. They agree through PostgreSQL (see `create_app`)."""
    import threading

    import httpx
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    config = uvicorn.Config(
        "halton_api.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        lifespan="on",
        access_log=False,
        **settings.uvicorn_options(),
    )
    sock = config.bind_socket()  # bound here, so the port is known before any worker starts
    bound = sock.getsockname()[1]
    public_url = os.environ.get("HALTON_PUBLIC_URL") or f"http://{host}:{bound}"
    # The workers are new interpreters (spawned): they read their settings from the environment.
    os.environ.update(_worker_environment(settings, public_url))
    settings = settings.model_copy(update={"public_url": public_url})
    local = f"http://127.0.0.1:{bound}" if host in ("0.0.0.0", "::") else f"http://{host}:{bound}"
    supervisor = Multiprocess(config, sockets=[sock])

    def announce_once_healthy() -> None:
        while not supervisor.should_exit.is_set():
            try:
                if httpx.get(f"{local}/healthz", timeout=2).status_code == 200:
                    announce.say(bound, settings)
                    return
            except httpx.HTTPError:
                pass
            supervisor.should_exit.wait(0.2)

    threading.Thread(target=announce_once_healthy, name="announce", daemon=True).start()
    try:
        supervisor.run()
    finally:
        sock.close()
        _stop_resource_tracker()


def _stop_resource_tracker() -> None:
    """Stop multiprocessing's resource tracker, the helper process the spawned workers started, and wait for
    it: left alone it ends a moment after `up` does, so `up` would return with a process of its still alive.
    (`_stop` is private, and has been there since Python 3.8; without it the tracker ends on its own.)"""
    from multiprocessing import resource_tracker

    stop = getattr(resource_tracker._resource_tracker, "_stop", None)
    if stop is not None:
        stop()


def _worker_environment(settings: CloudSettings, public_url: str) -> dict[str, str]:
    """`HALTON_*` variables that give a worker the settings `up` resolved (the stores it started)."""
    env = {
        "HALTON_DATA_DIR": str(settings.data_dir),
        "HALTON_CLICKHOUSE_URL": settings.warehouse.clickhouse_url,
        "HALTON_SECRET_KEY": settings.secret().decode(),
        "HALTON_PUBLIC_URL": public_url,
    }
    if settings.database_url is not None:
        env["HALTON_DATABASE_URL"] = settings.database_url
    return env


def _trusted_proxies(settings: CloudSettings) -> str:
    if not settings.forwarded_allow_ips:
        return "none trusted: X-Forwarded-For is ignored (HALTON_FORWARDED_ALLOW_IPS lists proxies to trust)"
    return f"X-Forwarded-For believed from {', '.join(settings.forwarded_allow_ips)}"


def _redact(url: str) -> str:
    head, sep, tail = url.partition("@")
    if sep and ":" in head.split("//", 1)[-1]:
        scheme, _, cred = head.partition("//")
        return f"{scheme}//{cred.split(':', 1)[0]}:***@{tail}"
    return url


def _dagster(
    settings: CloudSettings, database_url: str, warehouse_url: str, port: int, *, first_build: bool
) -> DagsterProcesses:
    """Dagster as deployed (`halton_api.orchestration`: PostgreSQL storage, the run queue, the code location
    as its own process), its UI on 127.0.0.1:`port`, against the same stores; with `first_build`, the demo's
    marts are built before it starts (`halton_api.dagster_processes`). Stopping it stops every process it
    started (code server, run workers, dbt), and `up` waits until they are all gone."""
    from halton_api.dagster_processes import DagsterProcesses
    from halton_api.orchestration import DagsterDeployment

    env = {
        **os.environ,
        "HALTON_DATABASE_URL": database_url,
        "HALTON_CLICKHOUSE_URL": warehouse_url,
        "HALTON_SECRET_KEY": settings.secret().decode(),
        "DAGSTER_POSTGRES_URL": _dagster_database(database_url),
        # Library notes (deprecations, the Dagster home hint) belong in dagster.log, not on the terminal.
        "PYTHONWARNINGS": "ignore::DeprecationWarning,ignore::UserWarning",
    }
    deployment = DagsterDeployment(
        home=settings.data_dir / "dagster",
        env=env,
        ui_port=port or _free_port(),
        grpc_port=_free_port(),
        log=settings.data_dir / "dagster.log",
    )
    return DagsterProcesses(deployment=deployment, first_build=first_build, say=console.print)


def _dagster_database(database_url: str) -> str:
    from halton_api.orchestration import dagster_database_url

    try:
        return dagster_database_url(database_url)
    except psycopg.Error as error:
        raise click.ClickException(
            f"cannot make Dagster's database on the control plane's server ({error}): create it by hand "
            "(`CREATE DATABASE <control plane's database>_dagster`) or grant CREATEDB to the control plane's user"
        ) from None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _ready_line(loader: _DemoLoader) -> str:
    from halton_api.demo import DEMO_PASSWORD

    return (
        f"[bold green]Ready[/]: {loader.public_url}/signin as [bold]ada@acme.example[/] / "
        f"[bold]{DEMO_PASSWORD}[/]"
    )


class _DemoLoader:
    """`halton-cloud demo` in a child process (its own interpreter: generating and compressing 200k rows
    must not hold the API's GIL), pointed at the stores and the API `up` started."""

    def __init__(self, requests: int, database_url: str, warehouse_url: str, data_dir: Path) -> None:
        self.requests = requests
        self.database_url = database_url
        self.warehouse_url = warehouse_url
        self.data_dir = data_dir
        self.process: subprocess.Popen[bytes] | None = None
        self.public_url = ""

    def start(self, api_url: str, public_url: str) -> None:
        self.public_url = public_url
        env = {
            **os.environ,
            "HALTON_DATABASE_URL": self.database_url,
            "HALTON_CLICKHOUSE_URL": self.warehouse_url,
            "HALTON_DATA_DIR": str(self.data_dir),
        }
        command = [sys.executable, "-m", "halton_api.cloud_cli", "demo", "--requests", str(self.requests)]
        self.process = subprocess.Popen([*command, "--url", api_url], env=env)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()


@main.command()
@click.option("--seed", default=7, show_default=True, type=int, help="Same seed, same demo.")
@click.option(
    "--requests",
    "requests_",
    default=DEFAULT_DEMO_REQUESTS,
    show_default=True,
    type=click.IntRange(min=1),
    help="How many requests the demo devices send.",
)
@click.option("--data-dir", type=click.Path(path_type=Path), envvar="HALTON_DATA_DIR", default=None)
@click.option(
    "--url",
    "api_url",
    default=f"http://127.0.0.1:{DEFAULT_PORT}",
    show_default=True,
    help="The running API the requests are sent to.",
)
@click.option(
    "--senders", default=4, show_default=True, type=click.IntRange(min=1), help="Concurrent batches."
)
@click.option("--resend", is_flag=True, help="Send every request even when the warehouse holds them all.")
def demo(seed: int, requests_: int, data_dir: Path | None, api_url: str, senders: int, resend: bool) -> None:
    """Fill the demo workspace through the real paths (store functions, the ingestion API, the billing
    writers). Safe to run twice: the second run changes no number."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from halton_api import postgres
    from halton_api.demo import load_demo

    for noisy in ("httpx", "halton_warehouse.catalogue_rate_rows"):  # a line per batch; price-card notes
        logging.getLogger(noisy).setLevel(logging.WARNING)
    settings = _settings(data_dir=data_dir)
    with ExitStack() as stack:
        database_url = settings.database_url or stack.enter_context(
            postgres.embedded_postgres(settings.data_dir)
        )
        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=console,
        ) as bar:
            task = bar.add_task("demo requests", total=requests_)
            try:
                loaded = load_demo(
                    database_url=database_url,
                    warehouse_url=settings.warehouse.clickhouse_url,
                    databases=settings.warehouse.databases,
                    api_url=api_url,
                    seed=seed,
                    requests=requests_,
                    senders=senders,
                    resend=resend,
                    progress=lambda done, total: bar.update(task, completed=done),
                )
            except (RuntimeError, psycopg.OperationalError) as error:
                raise click.ClickException(str(error)) from None
    sent = (
        "all already in the warehouse, none sent"
        if loaded.skipped
        else f"{loaded.accepted:,} accepted, {loaded.duplicates:,} duplicates"
    )
    console.print(f"[bold green]demo loaded[/]: workspace {loaded.workspace.name} (/{loaded.workspace.slug})")
    console.print(f"  requests:   {loaded.requests:,} ({sent})")
    console.print(f"  billing:    {loaded.cost_lines:,} billed lines, {loaded.statements} pasted statements")
    console.print(f"  sign in:    {api_url.rstrip('/')}/signin as {loaded.owner_email} / {loaded.password}")
    console.print("              (every demo member, e.g. bram@acme.example, has the same password)")


if __name__ == "__main__":
    main()
