"""Load a `Demo` straight into the warehouse's raw tables.

Benchmarks load everything this way. `halton-cloud demo` creates the workspace, members, devices, projects,
cost centers, budgets and statements in the control plane (the snapshot asset copies them), sends the requests
through the API as the paired devices would, and loads the rest with
`load_demo(..., requests=False, control_plane=False)`: the demo's catalogue as rate rows (what the warehouse
re-prices with) and the providers' billed lines.
Requests go in with the column mapping the API's batch writer uses (workspace_id, device_id and batch_id
set by the loader); `ingested_at` takes its default.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from types import MappingProxyType

from clickhouse_connect.driver.client import Client

from halton_meter.catalogue import Catalogue, PriceEntry, Rates, load_catalogue
from halton_pipelines.demo_data import Billing, Demo, RequestChunk
from halton_pipelines.price_card import card_rows
from halton_pipelines.raw_writes import CostLine, now, write_cost_lines, write_rate_rows, write_snapshot
from halton_warehouse import Databases

log = logging.getLogger(__name__)

BILLING_SOURCE = "demo"


@dataclass(frozen=True)
class LoadedDemo:
    requests: int
    cost_lines: int
    statements: int
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
    if control_plane:
        write_control_plane(client, databases, demo, billing, snapshot_at=snapshot_at or now())
    prices = write_rate_rows(client, databases, card_rows(demo_catalogue(demo)))
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
    return LoadedDemo(count, written, len(billing.statements()), prices)


def demo_catalogue(demo: Demo) -> Catalogue:
    """The packaged catalogue plus the demo's story: the provider's dated price cut (the last of the demo's
    price rows), which the warehouse knows from its day while the demo's meter learnt it only days later."""
    catalogue = load_catalogue()
    cut = demo.price_rows[-1]
    model = catalogue.find(cut.provider, cut.model)
    if model is None:
        raise ValueError(f"the catalogue has no {cut.provider}/{cut.model} for the demo's price cut")
    rates = Rates(
        input=cut.input_mtok,
        output=cut.output_mtok,
        cache_read=cut.cache_read_mtok,
        cache_write_5m=cut.cache_write_mtok,
        cache_write_1h=cut.cache_write_1h_mtok,
    )
    entry = PriceEntry(cut.valid_from.date(), "demo", rates, (), MappingProxyType({}))
    models = tuple(replace(m, prices=(*m.prices, entry)) if m is model else m for m in catalogue.models)
    return replace(
        catalogue, version=f"{catalogue.version}+demo-{cut.valid_from.date().isoformat()}", models=models
    )


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


def write_control_plane(
    client: Client, databases: Databases, demo: Demo, billing: Billing, *, snapshot_at: datetime
) -> None:
    """The demo's control plane as one snapshot of every table."""
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
        "billing_statements": [
            [
                ws.workspace_id,
                s.provider,
                s.period,
                s.amount,
                "USD",
                s.note,
                demo.members[1].user_id,
                s.entered_at,
            ]
            for s in billing.statements()
        ],
    }
    for table, rows in tables.items():
        write_snapshot(client, databases, table, rows, snapshot_at=snapshot_at)
