"""Billing inputs kept in the control plane: provider billing-API connections (read here without their keys;
`store.provider_connections` adds and removes them) and the monthly statement totals pasted in the
reconciliation page, with every version they had."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any, Literal
from uuid import UUID

from halton_api.dashboards.page_models import StatementCreate, StatementPublic, StatementRevisionPublic
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
    "SELECT s.id, s.provider, s.period, s.amount AS amount_usd, s.note, u.email AS entered_by, s.entered_at"
    " FROM billing_statements s LEFT JOIN users u ON u.id = s.entered_by"
)
StatementSaved = Literal["pasted", "corrected", "unchanged"]


async def _with_corrections(conn: Connection, rows: list[dict[str, Any]]) -> list[StatementPublic]:
    """Each statement with the versions it corrected (every revision but the one in force), newest first."""
    earlier: dict[UUID, list[StatementRevisionPublic]] = {}
    if rows:
        revisions = await (
            await conn.execute(
                "SELECT r.statement_id, r.amount AS amount_usd, r.note, u.email AS entered_by, r.entered_at"
                " FROM billing_statement_revisions r LEFT JOIN users u ON u.id = r.entered_by"
                " WHERE r.statement_id = ANY(%s) ORDER BY r.id DESC",
                ([row["id"] for row in rows],),
            )
        ).fetchall()
        for revision in revisions:
            earlier.setdefault(revision["statement_id"], []).append(
                StatementRevisionPublic.model_validate(revision)
            )
    return [
        StatementPublic.model_validate({**row, "corrections": earlier.get(row["id"], [])[1:]}) for row in rows
    ]


async def list_statements(
    conn: Connection, *, workspace_id: UUID, since: date | None = None
) -> list[StatementPublic]:
    """Pasted statements (USD), newest month first, each with its corrections; `since` keeps months from that
    one on."""
    where, params = "s.workspace_id = %s AND s.currency = 'USD'", [workspace_id]
    if since is not None:
        where += " AND s.period >= %s"
        params.append(since)
    rows = await (
        await conn.execute(f"{_STATEMENTS} WHERE {where} ORDER BY s.period DESC, s.provider", params)
    ).fetchall()
    return await _with_corrections(conn, rows)


async def save_statement(
    conn: Connection, *, workspace_id: UUID, statement: StatementCreate, actor: Actor
) -> tuple[StatementPublic, StatementSaved]:
    """Paste the statement of (provider, month), or correct the one pasted before: the version in force is
    replaced, every version is kept as a revision, and the audit event is written in the same transaction.
    The same amount and note again change nothing (no revision, no event)."""
    entered_by = actor.id if actor.type == "user" else None
    previous = await (
        await conn.execute(
            "SELECT id, amount, note FROM billing_statements WHERE workspace_id = %s AND provider = %s"
            " AND period = %s FOR UPDATE",
            (workspace_id, statement.provider, statement.period),
        )
    ).fetchone()
    if previous is not None and (previous["amount"], previous["note"]) == (
        statement.amount_usd,
        statement.note,
    ):
        outcome: StatementSaved = "unchanged"
    else:
        outcome = "pasted" if previous is None else "corrected"
        saved = await (
            await conn.execute(
                "INSERT INTO billing_statements (workspace_id, provider, period, amount, note, entered_by)"
                " VALUES (%s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (workspace_id, provider, period) DO UPDATE SET amount = EXCLUDED.amount,"
                " note = EXCLUDED.note, entered_by = EXCLUDED.entered_by, entered_at = now(), currency = 'USD'"
                " RETURNING id",
                (
                    workspace_id,
                    statement.provider,
                    statement.period,
                    statement.amount_usd,
                    statement.note,
                    entered_by,
                ),
            )
        ).fetchone()
        assert saved is not None
        await conn.execute(
            "INSERT INTO billing_statement_revisions (statement_id, amount, currency, note, entered_by, entered_at)"
            " SELECT id, amount, currency, note, entered_by, entered_at FROM billing_statements WHERE id = %s",
            (saved["id"],),
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
            details["previous_note"] = previous["note"]
        await audit.record(
            conn,
            workspace_id=workspace_id,
            actor=actor,
            event=f"billing.statement_{outcome}",
            resource_type="billing_statement",
            resource_id=saved["id"],
            resource_label=label,
            details=details,
        )
    rows = await (
        await conn.execute(
            f"{_STATEMENTS} WHERE s.workspace_id = %s AND s.provider = %s AND s.period = %s",
            (workspace_id, statement.provider, statement.period),
        )
    ).fetchall()
    return (await _with_corrections(conn, rows))[0], outcome
