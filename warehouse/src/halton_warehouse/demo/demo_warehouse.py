"""Load a `Demo` straight into the warehouse's raw tables.

Benchmarks load everything this way. `halton-cloud demo` creates the workspace, members, devices, projects,
cost centers, budgets and pasted statements in the control plane (the snapshot asset copies them), sends the
requests through the API as the paired devices would, and writes the demo's catalogue as rate rows (what the
warehouse re-prices with) and the providers' billed lines with the writers used here. Tests seed the control
plane with `testing.factories.seed_demo_control_plane` and load the rest with `load_demo(...,
control_plane=False)`.
Requests go in with the column mapping the API's batch writer uses (workspace_id, device_id and batch_id
set by the loader); `ingested_at` takes its default.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from clickhouse_connect.driver.client import Client

from halton_warehouse import Databases
from halton_warehouse.catalogue_rate_rows import card_rows
from halton_warehouse.demo.demo_data import Billing, Demo, RequestChunk
from halton_warehouse.price_catalogues import is_stored, store_catalogue
from halton_warehouse.raw_writes import (
    CostLine,
    changed_rate_rows,
    current_rate_rows,
    now,
    write_cost_lines,
    write_rate_rows,
    write_snapshot,
)

log = logging.getLogger(__name__)

BILLING_SOURCE = "demo"


@dataclass(frozen=True)
class LoadedDemo:
    requests: int
    cost_lines: int
    price_rows: int


def load_demo(
    client: Client,
    databases: Databases,
    demo: Demo,
    *,
    requests: bool = True,
    control_plane: bool = True,
    snapshot_at: datetime | None = None,
) -> LoadedDemo:
    """Write the demo catalogue's rate rows and the demo's billed lines, its requests (unless `requests=False`) and a copy of its
    control plane (unless `control_plane=False`: then the snapshot asset copies the real one)."""
    billing = Billing(demo)
    count = 0
    for chunk in demo.chunks():
        billing.add(chunk)
        if requests:
            insert_requests(client, databases, demo, chunk)
            count += len(chunk)
    if requests and demo.config.copies > 1:
        count += replicate_requests(client, databases, demo)
    if control_plane:
        write_control_plane(client, databases, demo, snapshot_at=snapshot_at or now())
    prices = write_demo_catalogue(client, databases, demo)
    lines = billing.lines()
    workspace = demo.workspace.workspace_id
    written = write_cost_lines(
        client,
        databases,
        (
            CostLine(
                workspace, line.provider, line.day, BILLING_SOURCE, line.model, line.amount, model=line.model
            )
            for line in lines
        ),
    )
    log.info("demo loaded: %d requests, %d billing lines, %d price rows", count, written, prices)
    return LoadedDemo(count, written, prices)


def write_demo_catalogue(client: Client, databases: Databases, demo: Demo) -> int:
    """Put the demo's catalogue in force in the cloud, as the `price_catalogue` asset would, and write its
    rate rows where the warehouse does not hold them yet; returns the rate rows written.

    The packaged catalogue is stored first (the version the demo's meter priced with before the cut), so the
    daily refresh from the packaged source finds it stored and leaves the demo's catalogue in force."""
    stored_at = now()
    for document, fetched_at in (
        (demo.packaged_catalogue_document, stored_at - timedelta(seconds=1)),
        (demo.catalogue_document, stored_at),
    ):
        if not is_stored(client, databases, document["version"]):
            store_catalogue(
                client,
                databases,
                version=document["version"],
                document=json.dumps(document, indent=1),
                source=BILLING_SOURCE,
                fetched_at=fetched_at,
                changes="",
            )
    rows = card_rows(demo.catalogue)
    return write_rate_rows(client, databases, changed_rate_rows(rows, current_rate_rows(client, databases)))


def insert_requests(
    client: Client,
    databases: Databases,
    demo: Demo,
    chunk: RequestChunk,
    *,
    batch_id: uuid.UUID | None = None,
    arrived_now: bool = False,
) -> None:
    """Insert one chunk of requests into `raw.requests`, as one batch: arrived when the meters would have
    synced them, or `arrived_now`."""
    client.insert_arrow(
        f"{databases.raw}.requests", chunk.to_arrow(demo, batch_id=batch_id, arrived_now=arrived_now)
    )


# Columns a copy of a request changes: a uid of its own, and its own prompt (a prompt repeated in the demo is
# repeated within each copy, never across copies, so clusters and loops scale with the copies).
COPY_COLUMNS = {
    "request_uid": "generateUUIDv4(c.number)",
    "prompt_hash": "if(r.prompt_hash IS NULL, NULL, lower(hex(SHA256(concat(r.prompt_hash, '/', toString(c.number))))))",
    "provider_request_id": "if(r.provider_request_id IS NULL, NULL, concat(r.provider_request_id, '_', toString(c.number)))",
}


def replicate_requests(client: Client, databases: Databases, demo: Demo) -> int:
    """Copy the demo's loaded requests `demo.config.copies - 1` more times inside the warehouse (one INSERT ...
    SELECT over numbers(), which reads the table as it was when the statement began); returns the rows added."""
    table = f"{databases.raw}.requests"
    columns = [
        name
        for (name,) in client.query(
            "SELECT name FROM system.columns WHERE database = %(db)s AND table = 'requests' ORDER BY position",
            parameters={"db": databases.raw},
        ).result_rows
    ]
    select = ", ".join(COPY_COLUMNS.get(name, f"r.{name}") for name in columns)
    extra = demo.config.copies - 1
    client.command(
        f"INSERT INTO {table} ({', '.join(columns)}) SELECT {select} FROM {table} AS r"
        f" CROSS JOIN numbers(1, {extra}) AS c WHERE r.workspace_id = %(ws)s",
        parameters={"ws": str(demo.workspace.workspace_id)},
        # Blocks of a few million rows: fewer parts for the merges to fold, still far below the memory limit.
        settings={"min_insert_block_size_rows": 4_000_000, "max_insert_threads": 2},
    )
    return demo.config.requests * extra


def write_control_plane(client: Client, databases: Databases, demo: Demo, *, snapshot_at: datetime) -> None:
    """The demo's control plane as one snapshot of every table, for benchmarks that run without one."""
    ws = demo.workspace
    tables = {
        "workspaces": [[ws.workspace_id, ws.slug, ws.name, ws.created_at]],
        "members": [[ws.workspace_id, m.user_id, m.email, m.name, m.role, m.joined_at] for m in demo.members],
        "devices": [
            [
                ws.workspace_id,
                d.device_id,
                d.machine_id,
                d.hostname,
                d.name,
                d.paired_by,
                d.paired_at,
                None,
                d.status,
            ]
            for d in demo.devices
        ],
        "cost_centers": [
            [ws.workspace_id, c.cost_center_id, c.name, c.created_at] for c in demo.cost_centers
        ],
        "projects": [
            [
                ws.workspace_id,
                p.project_id,
                p.slug,
                p.name,
                p.archived,
                p.hourly_rate,
                p.cost_center_id,
                p.created_at,
            ]
            for p in demo.projects
        ],
        "budgets": [
            [ws.workspace_id, b.budget_id, b.project_id, b.monthly_amount, b.currency, b.updated_at]
            for b in demo.budgets
        ],
        # Statements are never written to the warehouse alone: they are pasted in the control plane
        # (`halton-cloud demo`, `seed_demo_control_plane`) and copied by the snapshot asset. Without a control
        # plane there are none, and Gemini (no billing API) stays unbilled.
        "billing_statements": [],
        # The demo's billing lines carry no provider projects: nothing to map.
        "provider_project_map": [],
    }
    for table, rows in tables.items():
        write_snapshot(client, databases, table, rows, snapshot_at=snapshot_at)
