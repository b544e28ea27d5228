"""Projects (registered from the slugs meters send), cost centers and monthly budgets."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any
from uuid import UUID

from psycopg import errors

from halton_api.errors import Conflict, Invalid, NotFound
from halton_api.models import BudgetPublic, CostCenterPublic, ProjectPublic, ProjectUpdate
from halton_api.store import Connection, audit
from halton_api.store.audit import Actor

_SELECT = (
    "SELECT p.id, p.slug, p.name, p.archived, p.hourly_rate, p.cost_center_id, c.name AS cost_center_name,"
    " p.created_at FROM projects p LEFT JOIN cost_centers c ON c.id = p.cost_center_id"
)


async def register_projects(
    conn: Connection, *, workspace_id: UUID, slugs: Iterable[str], actor: Actor
) -> list[str]:
    """Make sure every slug has a project; returns the slugs that were new."""
    return await _insert(conn, workspace_id, sorted(set(slugs)), actor, registered_by_device=None)


class ProjectQuotaExceeded(Exception):
    """A device's batch would register more new projects than its hourly quota allows; nothing was registered."""

    def __init__(self, *, new: int, recent: int, per_hour: int, retry_after: int | None) -> None:
        super().__init__(f"{new} new project(s), {recent} registered in the last hour, limit {per_hour}")
        self.new = new
        self.recent = recent
        self.per_hour = per_hour
        # Seconds until enough of the device's recent projects are an hour old for the batch to fit; None
        # when the batch alone holds more new projects than an hour allows (waiting cannot help).
        self.retry_after = retry_after


async def register_device_projects(
    conn: Connection,
    *,
    workspace_id: UUID,
    device_id: UUID,
    slugs: Iterable[str],
    actor: Actor,
    per_hour: int,
) -> list[str]:
    """Projects for the slugs of a device's batch that the workspace does not have yet; returns the new slugs.

    A device registers at most `per_hour` new projects in any hour (projects the workspace already has never
    count); a batch that would go past it registers none and raises `ProjectQuotaExceeded`. The device's row
    is locked for the transaction, so concurrent batches of one device are counted one after the other and
    cannot each fit under the quota.
    """
    wanted = set(slugs)
    if not wanted:
        return []
    await conn.execute("SELECT 1 FROM devices WHERE id = %s FOR UPDATE", (device_id,))
    new = sorted(wanted - await known_slugs(conn, workspace_id=workspace_id, slugs=wanted))
    if not new:
        return []
    # Seconds until each of the device's projects of the last hour is an hour old, soonest first.
    frees_in = [
        row["frees_in"]
        for row in await (
            await conn.execute(
                "SELECT ceil(extract(epoch FROM created_at + interval '1 hour' - now()))::int AS frees_in"
                " FROM projects WHERE registered_by_device = %s AND created_at > now() - interval '1 hour'"
                " ORDER BY created_at",
                (device_id,),
            )
        ).fetchall()
    ]
    over = len(frees_in) + len(new) - per_hour
    if over > 0:
        retry_after = max(1, frees_in[over - 1]) if over <= len(frees_in) else None
        raise ProjectQuotaExceeded(
            new=len(new), recent=len(frees_in), per_hour=per_hour, retry_after=retry_after
        )
    return await _insert(conn, workspace_id, new, actor, registered_by_device=device_id)


async def _insert(
    conn: Connection, workspace_id: UUID, slugs: list[str], actor: Actor, *, registered_by_device: UUID | None
) -> list[str]:
    if not slugs:
        return []
    rows = await (
        await conn.execute(
            "INSERT INTO projects (workspace_id, slug, name, registered_by_device)"
            " SELECT %s, s, s, %s FROM unnest(%s::text[]) AS s"
            " ON CONFLICT (workspace_id, slug) DO NOTHING RETURNING id, slug",
            (workspace_id, registered_by_device, slugs),
        )
    ).fetchall()
    for row in rows:
        await audit.record(
            conn,
            workspace_id=workspace_id,
            actor=actor,
            event="project.registered",
            resource_type="project",
            resource_id=row["id"],
            resource_label=row["slug"],
        )
    return [row["slug"] for row in rows]


class KnownProjects:
    """The (workspace, slug) pairs this process knows have a project, so a batch registers only the others.

    Projects are never deleted (only archived), so a pair once committed stays true for the life of the
    process. Remember pairs with `remember` only once the registering transaction has committed. Bounded:
    past `limit` pairs it starts afresh, and each slug then costs one more `INSERT … ON CONFLICT DO NOTHING`.
    """

    def __init__(self, limit: int = 100_000) -> None:
        self._limit = limit
        self._known: set[tuple[UUID, str]] = set()

    def unknown(self, workspace_id: UUID, slugs: Iterable[str]) -> set[str]:
        """Those of `slugs` not known to have a project in the workspace."""
        known = self._known
        return {slug for slug in slugs if (workspace_id, slug) not in known}

    def remember(self, workspace_id: UUID, slugs: Iterable[str]) -> None:
        if len(self._known) >= self._limit:
            self._known.clear()
        self._known.update((workspace_id, slug) for slug in slugs)


async def known_slugs(conn: Connection, *, workspace_id: UUID, slugs: Iterable[str]) -> set[str]:
    rows = await (
        await conn.execute(
            "SELECT slug FROM projects WHERE workspace_id = %s AND slug = ANY(%s)",
            (workspace_id, list(set(slugs))),
        )
    ).fetchall()
    return {row["slug"] for row in rows}


async def list_projects(conn: Connection, *, workspace_id: UUID) -> list[ProjectPublic]:
    rows = await (
        await conn.execute(
            f"{_SELECT} WHERE p.workspace_id = %s ORDER BY p.archived, p.slug", (workspace_id,)
        )
    ).fetchall()
    return [ProjectPublic.model_validate(r) for r in rows]


async def get_project(conn: Connection, *, workspace_id: UUID, project_id: UUID) -> ProjectPublic:
    row = await (
        await conn.execute(f"{_SELECT} WHERE p.workspace_id = %s AND p.id = %s", (workspace_id, project_id))
    ).fetchone()
    if row is None:
        raise NotFound("no such project in this workspace")
    return ProjectPublic.model_validate(row)


async def update_project(
    conn: Connection, *, workspace_id: UUID, project_id: UUID, update: ProjectUpdate, actor: Actor
) -> ProjectPublic:
    project = await get_project(conn, workspace_id=workspace_id, project_id=project_id)
    changes: dict[str, Any] = {}
    if update.name is not None and update.name.strip() != project.name:
        changes["name"] = update.name.strip()
    if update.archived is not None and update.archived != project.archived:
        changes["archived"] = update.archived
    if update.clear_hourly_rate:
        if project.hourly_rate is not None:
            changes["hourly_rate"] = None
    elif update.hourly_rate is not None and update.hourly_rate != project.hourly_rate:
        changes["hourly_rate"] = update.hourly_rate
    if update.clear_cost_center:
        if project.cost_center_id is not None:
            changes["cost_center_id"] = None
    elif update.cost_center_id is not None and update.cost_center_id != project.cost_center_id:
        await _cost_center(conn, workspace_id, update.cost_center_id)
        changes["cost_center_id"] = update.cost_center_id
    if not changes:
        return project
    assignments = ", ".join(f"{column} = %s" for column in changes)
    await conn.execute(f"UPDATE projects SET {assignments} WHERE id = %s", [*changes.values(), project_id])
    await audit.record(
        conn,
        workspace_id=workspace_id,
        actor=actor,
        event="project.archived" if changes.get("archived") else "project.updated",
        resource_type="project",
        resource_id=project_id,
        resource_label=project.slug,
        details={
            column: {"from": _jsonable(getattr(project, column)), "to": _jsonable(value)}
            for column, value in changes.items()
        },
    )
    return await get_project(conn, workspace_id=workspace_id, project_id=project_id)


def _jsonable(value: object) -> object:
    if isinstance(value, Decimal | UUID):
        return str(value)
    return value


async def _cost_center(conn: Connection, workspace_id: UUID, cost_center_id: UUID) -> CostCenterPublic:
    row = await (
        await conn.execute(
            "SELECT id, name, created_at FROM cost_centers WHERE workspace_id = %s AND id = %s",
            (workspace_id, cost_center_id),
        )
    ).fetchone()
    if row is None:
        raise NotFound("no such cost center in this workspace")
    return CostCenterPublic.model_validate(row)


async def create_cost_center(
    conn: Connection, *, workspace_id: UUID, name: str, actor: Actor
) -> CostCenterPublic:
    try:
        async with conn.transaction():
            row = await (
                await conn.execute(
                    "INSERT INTO cost_centers (workspace_id, name) VALUES (%s, %s) RETURNING id, name, created_at",
                    (workspace_id, name.strip()),
                )
            ).fetchone()
    except errors.UniqueViolation:
        raise Conflict(f"a cost center named {name.strip()!r} already exists") from None
    cost_center = CostCenterPublic.model_validate(row)
    await audit.record(
        conn,
        workspace_id=workspace_id,
        actor=actor,
        event="cost_center.created",
        resource_type="cost_center",
        resource_id=cost_center.id,
        resource_label=cost_center.name,
    )
    return cost_center


async def list_cost_centers(conn: Connection, *, workspace_id: UUID) -> list[CostCenterPublic]:
    rows = await (
        await conn.execute(
            "SELECT id, name, created_at FROM cost_centers WHERE workspace_id = %s ORDER BY name",
            (workspace_id,),
        )
    ).fetchall()
    return [CostCenterPublic.model_validate(r) for r in rows]


async def set_budget(
    conn: Connection,
    *,
    workspace_id: UUID,
    project_id: UUID | None,
    monthly_amount: Decimal,
    actor: Actor,
    cost_center_id: UUID | None = None,
) -> BudgetPublic:
    """Set the monthly budget of the workspace (`project_id` and `cost_center_id` None), of one project or of
    one cost center (the spend of the projects in it)."""
    if project_id is not None and cost_center_id is not None:
        raise Invalid("a budget is for the workspace, one project or one cost center: choose one")
    monthly_amount = monthly_amount.quantize(Decimal("0.01"))
    label = "workspace"
    if project_id is not None:
        label = (await get_project(conn, workspace_id=workspace_id, project_id=project_id)).slug
        conflict = "(workspace_id, project_id) WHERE project_id IS NOT NULL"
    elif cost_center_id is not None:
        label = f"cost center {(await _cost_center(conn, workspace_id, cost_center_id)).name}"
        conflict = "(workspace_id, cost_center_id) WHERE cost_center_id IS NOT NULL"
    else:
        conflict = "(workspace_id) WHERE project_id IS NULL AND cost_center_id IS NULL"
    previous = await (
        await conn.execute(
            "SELECT monthly_amount FROM budgets WHERE workspace_id = %s AND project_id IS NOT DISTINCT FROM %s"
            " AND cost_center_id IS NOT DISTINCT FROM %s",
            (workspace_id, project_id, cost_center_id),
        )
    ).fetchone()
    row = await (
        await conn.execute(
            "INSERT INTO budgets (workspace_id, project_id, cost_center_id, monthly_amount) VALUES (%s, %s, %s, %s)"
            f" ON CONFLICT {conflict} DO UPDATE SET monthly_amount = EXCLUDED.monthly_amount, updated_at = now()"
            " RETURNING id",
            (workspace_id, project_id, cost_center_id, monthly_amount),
        )
    ).fetchone()
    assert row is not None
    await audit.record(
        conn,
        workspace_id=workspace_id,
        actor=actor,
        event="budget.set",
        resource_type="budget",
        resource_id=row["id"],
        resource_label=label,
        details={
            "from": str(previous["monthly_amount"]) if previous else None,
            "to": str(monthly_amount),
            "currency": "USD",
            **({"cost_center_id": str(cost_center_id)} if cost_center_id else {}),
        },
    )
    return next(b for b in await list_budgets(conn, workspace_id=workspace_id) if b.id == row["id"])


async def list_budgets(conn: Connection, *, workspace_id: UUID) -> list[BudgetPublic]:
    rows = await (
        await conn.execute(
            "SELECT b.id, b.project_id, p.slug AS project_slug, b.cost_center_id, c.name AS cost_center_name,"
            " b.monthly_amount, b.currency, b.updated_at, b.hard_limit"
            " FROM budgets b LEFT JOIN projects p ON p.id = b.project_id"
            " LEFT JOIN cost_centers c ON c.id = b.cost_center_id WHERE b.workspace_id = %s"
            " ORDER BY b.project_id IS NOT NULL OR b.cost_center_id IS NOT NULL, b.project_id IS NOT NULL,"
            " c.name, p.slug",
            (workspace_id,),
        )
    ).fetchall()
    return [BudgetPublic.model_validate(r) for r in rows]
