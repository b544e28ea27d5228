"""Billing inputs kept in the control plane: provider billing-API connections (read here without their keys;
`store.provider_connections` adds and removes them) and the monthly statement totals pasted in the
reconciliation page."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any
from uuid import UUID

from halton_api.dashboards.models import StatementCreate, StatementPublic
from halton_api.store import Connection, audit
from halton_api.store.audit import Actor


def _plain(amount: Decimal) -> str:
    """An amount as text without trailing zeros (numeric(18, 9) comes back with nine decimals)."""
    return format(amount.normalize(), "f")


async def list_connections(conn: Connection, *, workspace_id: UUID) -> list[dict[str, Any]]:
    """One row per provider with a stored admin key (revoked ones included), without the key."""
    return await (
        await conn.execute(
            "SELECT provider, key_prefix, key_last4, created_at, revoked_at, tested_at, test_error,"
            " last_pull_at, last_pull_day, last_pull_error FROM provider_connections"
            " WHERE workspace_id = %s ORDER BY provider",
            (workspace_id,),
        )
    ).fetchall()


_STATEMENTS = (
    "SELECT s.provider, s.period, s.amount AS amount_usd, s.note, u.email AS entered_by, s.entered_at"
    " FROM billing_statements s LEFT JOIN users u ON u.id = s.entered_by"
)


async def list_statements(
    conn: Connection, *, workspace_id: UUID, since: date | None = None
) -> list[StatementPublic]:
    """Pasted statements (USD), newest month first; `since` keeps months from that one on."""
    where, params = "s.workspace_id = %s AND s.currency = 'USD'", [workspace_id]
    if since is not None:
        where += " AND s.period >= %s"
        params.append(since)
    rows = await (
        await conn.execute(f"{_STATEMENTS} WHERE {where} ORDER BY s.period DESC, s.provider", params)
    ).fetchall()
    return [StatementPublic.model_validate(row) for row in rows]


async def save_statement(
    conn: Connection, *, workspace_id: UUID, statement: StatementCreate, actor: Actor
) -> tuple[StatementPublic, bool]:
    """Insert or replace the statement of (provider, month), with its audit event in the same transaction.
    Returns it and whether it was new."""
    previous = await (
        await conn.execute(
            "SELECT amount, note FROM billing_statements WHERE workspace_id = %s AND provider = %s"
            " AND period = %s FOR UPDATE",
            (workspace_id, statement.provider, statement.period),
        )
    ).fetchone()
    await conn.execute(
        "INSERT INTO billing_statements (workspace_id, provider, period, amount, note, entered_by)"
        " VALUES (%s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (workspace_id, provider, period) DO UPDATE SET amount = EXCLUDED.amount,"
        " note = EXCLUDED.note, entered_by = EXCLUDED.entered_by, entered_at = now(), currency = 'USD'",
        (
            workspace_id,
            statement.provider,
            statement.period,
            statement.amount_usd,
            statement.note,
            actor.id if actor.type == "user" else None,
        ),
    )
    label = f"{statement.provider} {statement.period:%Y-%m}"
    details: dict[str, Any] = {
        "provider": statement.provider,
        "month": f"{statement.period:%Y-%m}",
        "amount_usd": _plain(statement.amount_usd),
        "note": statement.note,
    }
    if previous is not None:
        details["previous_amount_usd"] = _plain(previous["amount"])
    await audit.record(
        conn,
        workspace_id=workspace_id,
        actor=actor,
        event="billing.statement_entered" if previous is None else "billing.statement_updated",
        resource_type="billing_statement",
        resource_id=label,
        resource_label=label,
        details=details,
    )
    row = await (
        await conn.execute(
            f"{_STATEMENTS} WHERE s.workspace_id = %s AND s.provider = %s AND s.period = %s",
            (workspace_id, statement.provider, statement.period),
        )
    ).fetchone()
    return StatementPublic.model_validate(row), previous is None
