"""Hard limits (issue 24): which project budgets paired meters enforce, and the blocks and overrides they report.

Turning a limit on or off is owner-only and audited. A meter's reports land in the audit log once each
(`meter_limit_events` keeps their ids: a meter resends until it gets a 2xx)."""

from __future__ import annotations

from decimal import Decimal
from uuid import UUID

from halton_api.errors import Invalid, NotFound
from halton_api.models import MeterLimitEvent
from halton_api.store import Connection, audit
from halton_api.store.audit import Actor


async def set_hard_limit(
    conn: Connection, *, workspace_id: UUID, budget_id: UUID, on: bool, actor: Actor
) -> str:
    """Mark a project's budget as a hard limit (or not); returns the project's slug."""
    row = await (
        await conn.execute(
            "SELECT b.hard_limit, b.monthly_amount, p.slug FROM budgets b LEFT JOIN projects p ON p.id = b.project_id"
            " WHERE b.workspace_id = %s AND b.id = %s",
            (workspace_id, budget_id),
        )
    ).fetchone()
    if row is None:
        raise NotFound("no such budget in this workspace")
    if row["slug"] is None:
        raise Invalid(
            "budget: only a project's budget can be a hard limit (meters block calls per project); "
            "set a budget for the project first"
        )
    if row["hard_limit"] == on:
        return row["slug"]
    await conn.execute("UPDATE budgets SET hard_limit = %s WHERE id = %s", (on, budget_id))
    await audit.record(
        conn,
        workspace_id=workspace_id,
        actor=actor,
        event="budget.limit_on" if on else "budget.limit_off",
        resource_type="budget",
        resource_id=budget_id,
        resource_label=row["slug"],
        details={"monthly_amount": str(row["monthly_amount"]), "currency": "USD"},
    )
    return row["slug"]


async def limited_projects(conn: Connection, *, workspace_id: UUID) -> list[tuple[str, Decimal]]:
    """(slug, monthly budget) of each project whose budget is a hard limit, by slug."""
    rows = await (
        await conn.execute(
            "SELECT p.slug, b.monthly_amount FROM budgets b JOIN projects p ON p.id = b.project_id"
            " WHERE b.workspace_id = %s AND b.hard_limit ORDER BY p.slug",
            (workspace_id,),
        )
    ).fetchall()
    return [(row["slug"], row["monthly_amount"]) for row in rows]


async def record_meter_events(
    conn: Connection, *, workspace_id: UUID, device_id: UUID, actor: Actor, events: list[MeterLimitEvent]
) -> int:
    """Keep each event the first time it arrives, with its audit event; returns how many were new."""
    new = 0
    for event in events:
        row = await (
            await conn.execute(
                "INSERT INTO meter_limit_events (event_uid, workspace_id, device_id, kind, via, project, provider,"
                " model, occurred_at, budget_usd, spend_usd) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (event_uid) DO NOTHING RETURNING event_uid",
                (
                    event.event_uid, workspace_id, device_id, event.kind, event.via, event.project,
                    event.provider, event.model, event.occurred_at, event.budget_usd, event.spend_usd,
                ),
            )
        ).fetchone()  # fmt: skip
        if row is None:
            continue
        new += 1
        await audit.record(
            conn,
            workspace_id=workspace_id,
            actor=actor,
            event="budget.call_blocked" if event.kind == "blocked" else "budget.call_overridden",
            resource_type="project",
            resource_id=event.project,
            resource_label=event.project,
            details={
                "device": actor.label,
                "provider": event.provider,
                "model": event.model,
                "at": event.occurred_at.isoformat(),
                "via": event.via,
                "budget_usd": str(event.budget_usd),
                "spend_usd": str(event.spend_usd),
            },
        )
    return new
