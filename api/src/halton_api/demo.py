"""`halton-cloud demo`: fill a demo workspace through the product's real paths.

The control plane (members, workspace, memberships, cost centers, projects, budgets, devices) is written with
the store functions the API uses; every demo request goes through `POST /v1/requests/batch` of a running API
with its own device's sync token; the pasted Gemini statements are saved as an admin pasting them in the
reconciliation page would (control-plane rows with their audit events, copied to the warehouse by the
snapshot asset like any other), and the providers' billed lines go into `raw.provider_costs` with the writer
Dagster's billing pulls use.

Running it twice changes no number: the rows follow from the seed and from the demo workspace's creation hour
(the demo period ends there, so a later run regenerates the same requests), ingestion is idempotent per
request_uid, control-plane rows are found by their natural keys and created only when missing (a statement
pasted again with the same total is no correction), and the billed lines are a ReplacingMergeTree read
deduplicated. A run that finds every request already in the
warehouse sends nothing (unless `resend=True`).
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import psycopg
from psycopg.rows import dict_row

from halton_api import passwords
from halton_api.dashboards.page_models import StatementCreate
from halton_api.models import ProjectUpdate, UserPublic, WorkspacePublic
from halton_api.store import Connection, devices, projects, users, workspaces
from halton_api.store import billing_inputs as billing_store
from halton_api.store.audit import Actor
from halton_warehouse import Databases, connect

log = logging.getLogger(__name__)

DEMO_PASSWORD = "halton-demo"  # every demo member signs in with it (documented in README.md)
DEFAULT_SEED = 7
DEFAULT_REQUESTS = 200_000
BATCH_ROWS = 5_000
SENDERS = 4
BILLING_SOURCE = "demo"
_ACTOR = Actor.system("demo")
_BATCH_NAMESPACE = uuid.UUID("0f9b7f0e-3a43-4a4e-9d55-1c1d2f7a9b10")


@dataclass(frozen=True)
class DemoLoaded:
    workspace: WorkspacePublic
    owner_email: str
    password: str
    requests: int
    accepted: int
    duplicates: int
    skipped: bool
    cost_lines: int
    statements: int


@dataclass(frozen=True)
class _Batch:
    device_index: int
    rows: int
    body: bytes


def load_demo(
    *,
    database_url: str,
    warehouse_url: str,
    databases: Databases,
    api_url: str,
    seed: int = DEFAULT_SEED,
    requests: int = DEFAULT_REQUESTS,
    senders: int = SENDERS,
    resend: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> DemoLoaded:
    """Load the demo; `progress(done, total)` is called as rows are acknowledged by the API."""
    return asyncio.run(
        _load(
            database_url=database_url,
            warehouse_url=warehouse_url,
            databases=databases,
            api_url=api_url.rstrip("/"),
            seed=seed,
            requests=requests,
            senders=senders,
            resend=resend,
            progress=progress,
        )
    )


async def _load(
    *,
    database_url: str,
    warehouse_url: str,
    databases: Databases,
    api_url: str,
    seed: int,
    requests: int,
    senders: int,
    resend: bool,
    progress: Callable[[int, int], None] | None,
) -> DemoLoaded:
    from halton_warehouse.demo.demo_data import MEMBERS, Demo, DemoConfig

    async with await psycopg.AsyncConnection.connect(database_url, row_factory=dict_row) as conn:
        members = await _members(conn, MEMBERS)
        owner = members[0]
        probe = Demo(DemoConfig(seed=seed, requests=1))  # names do not depend on the period
        workspace, created_at = await _workspace(conn, probe.workspace.name, owner)
        for spec, user in zip(MEMBERS[1:], members[1:], strict=True):
            await workspaces.add_member(
                conn, workspace_id=workspace.id, user=user, role=spec.role, actor=_ACTOR, via="demo"
            )
        await conn.commit()
        until = created_at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        demo = Demo(DemoConfig(seed=seed, requests=requests, until=until))
        project_ids = await _projects(conn, workspace.id, demo)
        await _budgets(conn, workspace.id, demo, project_ids)
        # The statements go in with the rest of the control plane, so the marts run that ingestion sets off
        # copies them with its snapshot (a pass over the demo's columns, well under a second).
        billing = demo.billing()
        statements = await _paste_statements(conn, workspace.id, billing, members[1])
        await conn.commit()

        client = connect(warehouse_url)
        try:
            present = _count_requests(client, databases, workspace.id)
            skip = present >= requests and not resend
            accepted = duplicates = 0
            if skip:
                if progress:
                    progress(requests, requests)
            else:
                tokens = await _pair_devices(conn, workspace.id, demo, members)
                await conn.commit()
                accepted, duplicates = await _send(demo, tokens, api_url, senders, progress, requests)
                await _retire_devices(conn, workspace.id, demo)
                await conn.commit()
            cost_lines = _write_billing(client, databases, workspace.id, demo, billing)
        finally:
            client.close()
    return DemoLoaded(
        workspace=workspace,
        owner_email=owner.email,
        password=DEMO_PASSWORD,
        requests=requests,
        accepted=accepted,
        duplicates=duplicates,
        skipped=skip,
        cost_lines=cost_lines,
        statements=statements,
    )


# --- the control plane ------------------------------------------------------------------------------------


async def _members(conn: Connection, specs: Any) -> list[UserPublic]:
    found: list[UserPublic] = []
    password_hash: str | None = None
    for spec in specs:
        credentials = await users.get_credentials(conn, email=spec.email)
        if credentials is not None:
            found.append(credentials.user)
            continue
        password_hash = password_hash or passwords.hash_password(DEMO_PASSWORD)
        found.append(
            await users.create_user(conn, email=spec.email, name=spec.name, password_hash=password_hash)
        )
    return found


async def _workspace(conn: Connection, name: str, owner: UserPublic) -> tuple[WorkspacePublic, datetime]:
    query = (
        "SELECT id, slug, name, created_at FROM workspaces WHERE created_by = %s AND name = %s"
        " ORDER BY created_at LIMIT 1"
    )
    row = await (await conn.execute(query, (owner.id, name))).fetchone()
    if row is None:
        await workspaces.create_workspace(conn, name=name, owner=owner)
        row = await (await conn.execute(query, (owner.id, name))).fetchone()
    assert row is not None
    return WorkspacePublic.model_validate(row), row["created_at"]


async def _projects(conn: Connection, workspace_id: uuid.UUID, demo: Any) -> dict[str, uuid.UUID]:
    centers = {c.name: c.id for c in await projects.list_cost_centers(conn, workspace_id=workspace_id)}
    for center in demo.cost_centers:
        if center.name not in centers:
            created = await projects.create_cost_center(
                conn, workspace_id=workspace_id, name=center.name, actor=_ACTOR
            )
            centers[created.name] = created.id
    demo_centers = {c.cost_center_id: c.name for c in demo.cost_centers}
    await projects.register_projects(
        conn, workspace_id=workspace_id, slugs=[p.slug for p in demo.projects], actor=_ACTOR
    )
    existing = {p.slug: p for p in await projects.list_projects(conn, workspace_id=workspace_id)}
    ids: dict[str, uuid.UUID] = {}
    for spec in demo.projects:
        project = existing[spec.slug]
        ids[spec.slug] = project.id
        center = centers[demo_centers[spec.cost_center_id]] if spec.cost_center_id else None
        update = ProjectUpdate(
            name=spec.name,
            hourly_rate=spec.hourly_rate,
            clear_hourly_rate=spec.hourly_rate is None,
            cost_center_id=center,
            clear_cost_center=center is None,
        )
        await projects.update_project(
            conn, workspace_id=workspace_id, project_id=project.id, update=update, actor=_ACTOR
        )
    return ids


async def _budgets(
    conn: Connection, workspace_id: uuid.UUID, demo: Any, project_ids: dict[str, uuid.UUID]
) -> None:
    slugs = {p.project_id: p.slug for p in demo.projects}
    current = {
        b.project_id: b.monthly_amount
        for b in await projects.list_budgets(conn, workspace_id=workspace_id)
        if b.cost_center_id is None
    }
    for budget in demo.budgets:
        project_id = project_ids[slugs[budget.project_id]] if budget.project_id else None
        amount = budget.monthly_amount.quantize(Decimal("0.01"))
        if current.get(project_id) == amount:
            continue
        await projects.set_budget(
            conn, workspace_id=workspace_id, project_id=project_id, monthly_amount=amount, actor=_ACTOR
        )


async def _pair_devices(
    conn: Connection, workspace_id: uuid.UUID, demo: Any, members: list[UserPublic]
) -> list[str]:
    """Pair (or re-pair) every demo device; its fresh sync token, in `demo.devices` order."""
    from halton_warehouse.demo.demo_data import DEVICES

    by_id = {m.user_id: user for m, user in zip(demo.members, members, strict=True)}
    tokens = []
    for spec, device in zip(DEVICES, demo.devices, strict=True):
        created = await devices.create_device(
            conn,
            workspace_id=workspace_id,
            machine_id=device.machine_id,
            hostname=device.hostname,
            paired_by=by_id[device.paired_by],
            actor=Actor.system("pairing"),
        )
        if created.device.name != spec.name:
            await devices.rename_device(
                conn, workspace_id=workspace_id, device_id=created.device.id, name=spec.name, actor=_ACTOR
            )
        tokens.append(created.token)
    return tokens


async def _retire_devices(conn: Connection, workspace_id: uuid.UUID, demo: Any) -> None:
    """Devices the demo shows as removed are removed once their history is in."""
    listed = {d.machine_id: d for d in await devices.list_devices(conn, workspace_id=workspace_id)}
    for device in demo.devices:
        current = listed[device.machine_id]
        if device.status != "active" and current.status != device.status:
            await devices.set_status(
                conn, workspace_id=workspace_id, device_id=current.id, status=device.status, actor=_ACTOR
            )


# --- the requests ------------------------------------------------------------------------------------------


def _count_requests(client: Any, databases: Databases, workspace_id: uuid.UUID) -> int:
    result = client.query(
        f"SELECT count() FROM {databases.raw}.requests_dedup WHERE workspace_id = {{ws:UUID}}",
        parameters={"ws": str(workspace_id)},
    )
    return int(result.result_rows[0][0])


def _batches(demo: Any, chunk: Any) -> list[_Batch]:
    """One chunk's rows as gzip'd `RequestBatch` bodies of at most BATCH_ROWS rows, one device each."""
    from halton_meter.protocol import RequestBatch

    per_device: dict[int, list[Any]] = {}
    index = {d.device_id: i for i, d in enumerate(demo.devices)}
    for request in chunk.requests(demo, validate=False):
        per_device.setdefault(index[request.device_id], []).append(request.row)
    out = []
    first = int(chunk.index[0]) if len(chunk) else 0
    for device_index, rows in sorted(per_device.items()):
        for start in range(0, len(rows), BATCH_ROWS):
            part = rows[start : start + BATCH_ROWS]
            batch_id = uuid.uuid5(_BATCH_NAMESPACE, f"{demo.config.seed}/{first}/{device_index}/{start}")
            body = RequestBatch.model_construct(schema_version=1, batch_id=batch_id, rows=part)
            out.append(_Batch(device_index, len(part), gzip.compress(body.model_dump_json().encode(), 1)))
    return out


async def _send(
    demo: Any,
    tokens: list[str],
    api_url: str,
    senders: int,
    progress: Callable[[int, int], None] | None,
    total: int,
) -> tuple[int, int]:
    queue: asyncio.Queue[_Batch | None] = asyncio.Queue(maxsize=senders * 2)
    counts = {"accepted": 0, "duplicates": 0, "done": 0}

    async def produce() -> None:
        try:
            for chunk in demo.chunks():
                for batch in await asyncio.to_thread(_batches, demo, chunk):
                    await queue.put(batch)
        finally:
            for _ in range(senders):
                await queue.put(None)

    async def send(client: httpx.AsyncClient) -> None:
        while (batch := await queue.get()) is not None:
            answer = await _post(client, api_url, tokens[batch.device_index], batch.body)
            counts["accepted"] += answer["accepted"]
            counts["duplicates"] += answer["duplicates"]
            counts["done"] += batch.rows
            if progress:
                progress(counts["done"], total)

    async with httpx.AsyncClient(timeout=120) as client:
        await asyncio.gather(produce(), *(send(client) for _ in range(senders)))
    return counts["accepted"], counts["duplicates"]


async def _post(client: httpx.AsyncClient, api_url: str, token: str, body: bytes) -> dict[str, Any]:
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
        "Content-Encoding": "gzip",
    }
    for attempt in range(8):
        try:
            response = await client.post(f"{api_url}/v1/requests/batch", content=body, headers=headers)
        except httpx.TransportError as error:
            if attempt == 7:
                raise RuntimeError(f"cannot reach the API at {api_url}: {error}") from None
            await asyncio.sleep(1 + attempt)
            continue
        if response.status_code in (429, 503):
            await asyncio.sleep(float(response.headers.get("retry-after", "2")))
            continue
        if response.status_code != 200:
            raise RuntimeError(
                f"the API refused a demo batch ({response.status_code}): {response.text[:500]}"
            )
        return response.json()
    raise RuntimeError(f"the API at {api_url} stayed busy: the demo batch was not accepted")


# --- the providers' side ----------------------------------------------------------------------------------


async def _paste_statements(
    conn: Connection, workspace_id: uuid.UUID, billing: Any, admin: UserPublic
) -> int:
    """Gemini's monthly invoice totals (it has no billing API we pull), pasted by the demo's admin."""
    statements = billing.statements()
    for s in statements:
        await billing_store.save_statement(
            conn,
            workspace_id=workspace_id,
            statement=StatementCreate(provider=s.provider, period=s.period, amount_usd=s.amount, note=s.note),
            actor=Actor.user(admin.id, admin.email),
        )
    return len(statements)


def _write_billing(
    client: Any, databases: Databases, workspace_id: uuid.UUID, demo: Any, billing: Any
) -> int:
    """The billed lines a billing pull would write, and the demo catalogue's rate rows (with its price cut)
    where the warehouse does not hold them yet."""
    from halton_warehouse.demo.demo_warehouse import write_demo_catalogue
    from halton_warehouse.raw_writes import CostLine, write_cost_lines

    written = write_cost_lines(
        client,
        databases,
        (
            CostLine(
                workspace_id,
                line.provider,
                line.day,
                BILLING_SOURCE,
                line.model,
                line.amount,
                model=line.model,
            )
            for line in billing.lines()
        ),
        pulled_at=demo.config.until,
    )
    write_demo_catalogue(client, databases, demo)
    return written
