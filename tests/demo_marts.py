"""A demo workspace with its marts built, for dashboard tests and benchmarks: real stores, dbt and Dagster.

The demo rows go straight into the warehouse's raw tables (ingestion has tests of its own), the control plane
is seeded as the API would hold it, and the marts are built by materializing the Dagster assets — the
control-plane snapshot, the price card, the dbt project, then the optimisation checks — exactly as the
scheduled jobs do. The demo ends at the start of the current hour, so "today", "this month" and the default
30 days all have data.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql

from halton_api.passwords import hash_password
from halton_api.postgres import migrate as migrate_control_plane
from halton_warehouse import Databases, connect
from halton_warehouse.migrate import migrate

DEMO_PASSWORD = "demo password for tests"
DEMO_REQUESTS = 30_000
GENERATED_AT_MOST = 1_000_000


@dataclass(frozen=True)
class BuiltDemo:
    warehouse_url: str
    prefix: str
    database_url: str
    demo: Any  # halton_warehouse.demo.demo_data.Demo
    # Seconds per step (load, sources, dbt, recommendations) and per dbt model, for benchmarks.
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def databases(self) -> Databases:
        return Databases.with_prefix(self.prefix)

    @property
    def slug(self) -> str:
        return self.demo.workspace.slug

    @property
    def workspace_id(self):
        return self.demo.workspace.workspace_id

    @property
    def owner_email(self) -> str:
        return self.demo.members[0].email

    def query(self, statement: str, **parameters: Any) -> list[tuple]:
        """Rows of `statement`; `{marts}` and `{ws}` are filled in, `%(name)s` bound from `parameters`."""
        text = statement.replace("{marts}", self.databases.marts).replace("{ws}", str(self.workspace_id))
        return connect(self.warehouse_url).query(text, parameters=parameters).result_rows

    def scalar(self, statement: str, **parameters: Any) -> Any:
        return self.query(statement, **parameters)[0][0]


def database_on(server_url: str, name: str) -> str:
    head, _, query = server_url.partition("?")
    return f"{head.rsplit('/', 1)[0]}/{name}" + (f"?{query}" if query else "")


def demo_of(requests: int) -> Any:
    """The demo of `requests` calls (its rows are made only when loaded): the same workspace, members and
    projects for a given size, so a benchmark can find a demo it built earlier."""
    from halton_warehouse.demo.demo_data import Demo, DemoConfig

    # Above a million requests the demo's first million are generated and copied inside the warehouse.
    copies = max(1, requests // GENERATED_AT_MOST)
    if requests % copies:
        raise ValueError(f"requests: {requests:,} does not split into {copies} equal copies")
    generated = requests // copies
    return Demo(
        DemoConfig(
            seed=7,
            requests=generated,
            days=90,
            chunk_size=min(50_000, max(10_000, generated // 10)),
            copies=copies,
        )
    )


def build_demo(
    warehouse_url: str,
    postgres_server: str,
    *,
    requests: int = DEMO_REQUESTS,
    statements: bool = True,
    recommendations: bool = True,
) -> BuiltDemo:
    """The demo in fresh databases with its marts built; `statements=False` leaves out the pasted Gemini
    statements, so a provider with logged spend has no bill in any month; `recommendations=False` leaves the
    optimisation checks out (at 100M calls their repeats query outlasts the warehouse client's 300 s timeout)."""
    import dagster as dg

    from halton_pipelines.defs.dbt import halton_dbt
    from halton_pipelines.defs.rate_row_assets import model_prices
    from halton_pipelines.defs.recommendation_assets import recommendations as recommendations_asset
    from halton_pipelines.defs.snapshot import control_plane_snapshot
    from halton_pipelines.resources import ControlPlaneResource, HaltonDbtResource, WarehouseResource
    from halton_pipelines.testing.factories import seed_demo_control_plane
    from halton_warehouse.demo.demo_warehouse import load_demo

    prefix = f"d{secrets.token_hex(4)}_"
    client = connect(warehouse_url)
    migrate(client, Databases.with_prefix(prefix))
    name = f"demo_{secrets.token_hex(5)}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    database_url = database_on(postgres_server, name)
    migrate_control_plane(database_url)

    demo = demo_of(requests)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    load_demo(client, Databases.with_prefix(prefix), demo, control_plane=False)
    timings["load"] = time.perf_counter() - started
    seed_demo_control_plane(database_url, demo, demo.billing())
    with psycopg.connect(database_url) as conn, conn.transaction():
        conn.execute("UPDATE users SET password_hash = %s", (hash_password(DEMO_PASSWORD),))
        if not statements:
            conn.execute("DELETE FROM billing_statements")
        # The seeded devices never synced; active ones have, a few minutes ago, as real meters would.
        conn.execute("UPDATE devices SET last_sync_at = now() - interval '3 minutes' WHERE status = 'active'")
        # ...and their meters report ACTIVE with nothing left to send (the demo cloud's silence window is long).
        conn.execute(
            "INSERT INTO device_reports (device_id, state, unsynced_rows, meter_version)"
            " SELECT id, 'ACTIVE', 0, 'demo' FROM devices WHERE status = 'active' ON CONFLICT DO NOTHING"
        )

    resources = {
        "warehouse": WarehouseResource(clickhouse_url=warehouse_url, database_prefix=prefix),
        "control_plane": ControlPlaneResource(database_url=database_url),
        "dbt": HaltonDbtResource(
            clickhouse_url=warehouse_url, database_prefix=prefix, as_of=datetime.now(UTC).date().isoformat()
        ),
    }
    started = time.perf_counter()
    sources = dg.materialize([control_plane_snapshot, model_prices], resources=resources)
    assert sources.success
    timings["sources"] = time.perf_counter() - started
    marts = dg.materialize([halton_dbt], resources=resources, raise_on_error=False)
    assert marts.success, "dbt build of the demo marts failed"
    timings["dbt"] = time.perf_counter() - started - timings["sources"]
    for event in marts.get_asset_materialization_events():
        duration = event.materialization.metadata.get("Execution Duration")
        if duration is not None:
            timings[f"model {event.asset_key.to_user_string()}"] = float(duration.value)
    if recommendations:
        started = time.perf_counter()
        # The optimisation checks read the marts dbt just built, as the hourly job does after the history marts.
        checks = dg.materialize([recommendations_asset], resources=resources)
        assert checks.success, "the recommendations asset failed on the demo marts"
        timings["recommendations"] = time.perf_counter() - started
    return BuiltDemo(warehouse_url, prefix, database_url, demo, timings)


def drop_demo(built: BuiltDemo, postgres_server: str) -> None:
    client = connect(built.warehouse_url)
    databases = built.databases
    for database in (databases.raw, f"{built.prefix}staging", databases.marts, databases.meta):
        client.command(f"DROP DATABASE IF EXISTS {database} SYNC")
    name = built.database_url.split("?")[0].rsplit("/", 1)[1]
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
