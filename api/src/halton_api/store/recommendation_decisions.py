"""Decisions on the optimisation recommendations (accept, dismiss, re-open) and per-project check suppressions.

Recommendations live in the warehouse (`marts.recommendations`, rewritten by every run of the checks); what
people decide about them lives here, keyed by the recommendation's stable id. Accepting copies the figures
realised savings need from the warehouse row, because a fixed pattern vanishes from the next run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal
from uuid import UUID

from halton_api.dashboards.page_models import CheckSuppression, RecommendationDecision
from halton_api.errors import Invalid, NotFound
from halton_api.store import Connection, audit
from halton_api.store.audit import Actor

Decision = Literal["accepted", "dismissed"]
KINDS = ("right_sizing", "prompt_caching", "batch_api", "duplicate_requests", "long_context", "failed_calls")

# The warehouse columns copied into a decision (names are the same on both sides).
SNAPSHOT_COLUMNS: tuple[str, ...] = (
    "run_id", "kind", "project", "provider", "model", "target_model", "title", "scope_models", "price_card",
    "monthly_saving_usd", "baseline_start", "baseline_end", "baseline_requests", "baseline_spend_usd",
    "baseline_spend_per_day_usd", "baseline_cost_per_request_usd", "expected_saving_per_request_usd",
    "realised_method",
)  # fmt: skip


def _user(actor: Actor) -> UUID | None:
    return actor.id if actor.type == "user" else None


async def decide(
    conn: Connection, *, workspace_id: UUID, row: Mapping[str, Any], status: Decision, actor: Actor
) -> RecommendationDecision:
    """Accept or dismiss the recommendation of warehouse `row` (a current one of this workspace).

    Deciding the same way twice changes nothing (an accepted recommendation keeps its first acceptance time,
    which realised savings count from); switching between accepted and dismissed records a new decision."""
    recommendation_id = UUID(str(row["recommendation_id"]))
    existing = await get_decision(conn, workspace_id=workspace_id, recommendation_id=recommendation_id)
    if existing is not None and existing.status == status:
        return existing
    values = [row[column] for column in SNAPSHOT_COLUMNS]
    columns = ", ".join(SNAPSHOT_COLUMNS)
    updates = ", ".join(f"{column} = EXCLUDED.{column}" for column in SNAPSHOT_COLUMNS)
    await conn.execute(
        f"INSERT INTO recommendation_decisions (workspace_id, recommendation_id, status, decided_by,"
        f" decided_by_label, decided_at, {columns})"
        f" VALUES (%s, %s, %s, %s, %s, now(), {', '.join(['%s'] * len(SNAPSHOT_COLUMNS))})"
        " ON CONFLICT (workspace_id, recommendation_id) DO UPDATE SET status = EXCLUDED.status,"
        " decided_by = EXCLUDED.decided_by, decided_by_label = EXCLUDED.decided_by_label,"
        f" decided_at = EXCLUDED.decided_at, {updates}",
        [workspace_id, recommendation_id, status, _user(actor), actor.label, *values],
    )
    await audit.record(
        conn,
        workspace_id=workspace_id,
        actor=actor,
        event=f"recommendation.{status}",
        resource_type="recommendation",
        resource_id=recommendation_id,
        resource_label=str(row["title"]),
        details={
            "kind": row["kind"],
            "project": row["project"],
            "provider": row["provider"],
            "model": row["model"],
            "monthly_saving_usd": str(row["monthly_saving_usd"]),
            "previous": existing.status if existing else None,
        },
    )
    decided = await get_decision(conn, workspace_id=workspace_id, recommendation_id=recommendation_id)
    assert decided is not None
    return decided


async def reopen(
    conn: Connection, *, workspace_id: UUID, recommendation_id: UUID, actor: Actor
) -> RecommendationDecision:
    """Undo a decision: the recommendation is open again (and an acceptance stops counting savings)."""
    row = await (
        await conn.execute(
            "DELETE FROM recommendation_decisions WHERE workspace_id = %s AND recommendation_id = %s RETURNING *",
            (workspace_id, recommendation_id),
        )
    ).fetchone()
    if row is None:
        raise NotFound("no decision on that recommendation in this workspace: it is open already")
    removed = RecommendationDecision.model_validate(row)
    await audit.record(
        conn,
        workspace_id=workspace_id,
        actor=actor,
        event="recommendation.reopened",
        resource_type="recommendation",
        resource_id=recommendation_id,
        resource_label=removed.title,
        details={
            "was": removed.status,
            "decided_at": removed.decided_at.isoformat(),
            "decided_by": removed.decided_by_label,
        },
    )
    return removed


async def get_decision(
    conn: Connection, *, workspace_id: UUID, recommendation_id: UUID
) -> RecommendationDecision | None:
    row = await (
        await conn.execute(
            "SELECT * FROM recommendation_decisions WHERE workspace_id = %s AND recommendation_id = %s",
            (workspace_id, recommendation_id),
        )
    ).fetchone()
    return RecommendationDecision.model_validate(row) if row else None


async def list_decisions(
    conn: Connection, *, workspace_id: UUID, status: Decision | None = None
) -> list[RecommendationDecision]:
    """Oldest decision first."""
    where, params = "workspace_id = %s", [workspace_id]
    if status is not None:
        where += " AND status = %s"
        params.append(status)
    rows = await (
        await conn.execute(
            f"SELECT * FROM recommendation_decisions WHERE {where} ORDER BY decided_at, recommendation_id",
            params,
        )
    ).fetchall()
    return [RecommendationDecision.model_validate(row) for row in rows]


def _check(kind: str, project: str) -> None:
    if kind not in KINDS:
        raise Invalid(f"kind: {kind!r} is not one of {', '.join(KINDS)}")
    if not project or len(project) > 200:
        raise Invalid("project: give the project's slug (at most 200 characters)")


async def suppress(
    conn: Connection, *, workspace_id: UUID, kind: str, project: str, actor: Actor
) -> CheckSuppression:
    """Hide check `kind`'s recommendations on `project` (only that project). Suppressing twice keeps the first."""
    _check(kind, project)
    row = await (
        await conn.execute(
            "INSERT INTO check_suppressions (workspace_id, kind, project, suppressed_by, suppressed_by_label)"
            " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (workspace_id, kind, project) DO NOTHING RETURNING *",
            (workspace_id, kind, project, _user(actor), actor.label),
        )
    ).fetchone()
    if row is None:  # already suppressed: nothing changed, nothing to audit
        existing = await (
            await conn.execute(
                "SELECT * FROM check_suppressions WHERE workspace_id = %s AND kind = %s AND project = %s",
                (workspace_id, kind, project),
            )
        ).fetchone()
        return CheckSuppression.model_validate(existing)
    await audit.record(
        conn,
        workspace_id=workspace_id,
        actor=actor,
        event="check.suppressed",
        resource_type="check",
        resource_id=f"{kind}/{project}",
        resource_label=f"{kind} on {project}",
        details={"kind": kind, "project": project},
    )
    return CheckSuppression.model_validate(row)


async def unsuppress(conn: Connection, *, workspace_id: UUID, kind: str, project: str, actor: Actor) -> None:
    _check(kind, project)
    row = await (
        await conn.execute(
            "DELETE FROM check_suppressions WHERE workspace_id = %s AND kind = %s AND project = %s RETURNING *",
            (workspace_id, kind, project),
        )
    ).fetchone()
    if row is None:
        raise NotFound(f"the {kind} check is not suppressed for {project!r} in this workspace")
    await audit.record(
        conn,
        workspace_id=workspace_id,
        actor=actor,
        event="check.unsuppressed",
        resource_type="check",
        resource_id=f"{kind}/{project}",
        resource_label=f"{kind} on {project}",
        details={"kind": kind, "project": project, "suppressed_at": row["suppressed_at"].isoformat()},
    )


async def list_suppressions(conn: Connection, *, workspace_id: UUID) -> list[CheckSuppression]:
    rows = await (
        await conn.execute(
            "SELECT * FROM check_suppressions WHERE workspace_id = %s ORDER BY kind, project", (workspace_id,)
        )
    ).fetchall()
    return [CheckSuppression.model_validate(row) for row in rows]
