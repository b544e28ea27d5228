"""A copy of the control plane's dimensions (PostgreSQL) in the warehouse's raw database.

Each run copies every table whole, with one snapshot_at, and logs each finished table in `raw.snapshots`;
staging reads exactly the newest logged copy, so deletions and emptied tables carry over.
"""

from datetime import UTC, datetime

import dagster as dg

from halton_pipelines.resources import ControlPlaneResource, WarehouseResource
from halton_warehouse.raw_writes import SNAPSHOT_COLUMNS, write_snapshot

# What each raw copy reads from the control plane, columns in `SNAPSHOT_COLUMNS` order. Ids travel as text
# (ClickHouse parses them into UUIDs); nothing secret (token hashes, password hashes) is read.
QUERIES: dict[str, str] = {
    "workspaces": "SELECT id::text, slug, name, created_at FROM workspaces",
    "members": (
        "SELECT m.workspace_id::text, m.user_id::text, u.email, u.name, m.role, m.created_at "
        "FROM memberships m JOIN users u ON u.id = m.user_id"
    ),
    "devices": (
        "SELECT workspace_id::text, id::text, machine_id, hostname, name, paired_by::text, paired_at, last_sync_at, "
        "status FROM devices"
    ),
    "cost_centers": "SELECT workspace_id::text, id::text, name, created_at FROM cost_centers",
    "projects": (
        "SELECT workspace_id::text, id::text, slug, name, archived, hourly_rate, cost_center_id::text, created_at "
        "FROM projects"
    ),
    "budgets": (
        "SELECT workspace_id::text, id::text, project_id::text, cost_center_id::text, monthly_amount, currency,"
        " updated_at FROM budgets"
    ),
    "billing_statements": (
        "SELECT workspace_id::text, provider, period, amount, currency, note, entered_by::text, entered_at "
        "FROM billing_statements"
    ),
    "provider_project_map": (
        "SELECT workspace_id::text, provider, provider_project, project_id::text, created_at FROM provider_project_map"
    ),
}

# Billed truth the control plane holds (the rest are dimensions).
BILLING_TABLES = ("billing_statements", "provider_project_map")
KEYS: dict[str, dg.AssetKey] = {
    table: dg.AssetKey(["billing" if table in BILLING_TABLES else "control_plane", table])
    for table in QUERIES
}
SNAPSHOT_LOG = dg.AssetKey(["control_plane", "snapshots"])

_DESCRIPTIONS = {
    "workspaces": "Workspaces, copied from the control plane.",
    "members": "Workspace members (memberships with the users' names and emails).",
    "devices": "Paired devices and who paired them.",
    "cost_centers": "Cost centers.",
    "projects": "Registered projects and their cost centers.",
    "budgets": "Monthly budgets (workspace-wide, per project or per cost center).",
    "billing_statements": "Monthly billing statement totals pasted in the dashboard (the version in force of"
    " each; the control plane keeps every revision). The control plane is their only home: this copy is"
    " replaced by each snapshot.",
    "provider_project_map": "Which of our projects each OpenAI project and Anthropic workspace bills for, as"
    " owners map them on the billing settings page; the per-project reconciliation reads it.",
}


@dg.multi_asset(
    specs=[
        *(
            dg.AssetSpec(
                key, description=_DESCRIPTIONS[table], group_name="sources", kinds={"postgres", "clickhouse"}
            )
            for table, key in KEYS.items()
        ),
        dg.AssetSpec(
            SNAPSHOT_LOG,
            description="One row per finished table copy.",
            group_name="sources",
            kinds={"clickhouse"},
        ),
    ],
    name="control_plane_snapshot",
)
def control_plane_snapshot(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, control_plane: ControlPlaneResource
):
    client = warehouse.client()
    taken = datetime.now(UTC)
    counts: dict[str, int] = {}
    for table, query in QUERIES.items():
        frame = control_plane.read(query)
        if frame.width != len(SNAPSHOT_COLUMNS[table]):
            raise dg.Failure(
                f"the {table} query returned {frame.width} columns, expected {SNAPSHOT_COLUMNS[table]}"
            )
        counts[table] = write_snapshot(client, warehouse.databases, table, frame.rows(), snapshot_at=taken)
        yield dg.MaterializeResult(asset_key=KEYS[table], metadata={"rows": counts[table]})
    yield dg.MaterializeResult(
        asset_key=SNAPSHOT_LOG, metadata={"snapshot_at": taken.isoformat(), "tables": len(counts)}
    )


defs = dg.Definitions(assets=[control_plane_snapshot])
