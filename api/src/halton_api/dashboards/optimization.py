"""Optimisation: the current recommendations of the checks, every check that ever fired (the catalog), and the
money accepted recommendations have saved since (realised savings).

The recommendations are in the warehouse (`marts.recommendations`, one full set per run of the checks, read as
`halton_pipelines/recommendations/README.md` says: the newest logged run, deduped); the decisions people made
on them and the checks they suppressed per project are in the control plane (`store.recommendations`).

Recommendations cover the checks' own 30-day window whatever the rail's dates say, and they are about a
project's calls to one model, not a device: the rail's project, provider, model and cost-center filters apply,
the date range and device filters do not (each page lists what it ignored).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from clickhouse_connect.driver.client import Client

from halton_api.charts import money
from halton_api.dashboards import spend
from halton_api.dashboards.filters import RANGES, UNASSIGNED, Scope
from halton_api.dashboards.model_names import base_model, display_model
from halton_api.dashboards.page_models import (
    CatalogCheck,
    CheckSuppression,
    OptimizationCatalogPublic,
    OptimizationPublic,
    RealisedSaving,
    RealisedSavingsPublic,
    RecommendationDecision,
    RecommendationPublic,
    SampleRequest,
)
from halton_api.dashboards.reader import Marts
from halton_api.dashboards.view import View
from halton_api.store import Connection
from halton_api.store import recommendation_decisions as decisions_store

ZERO = Decimal(0)
MONTH_DAYS = 30  # the checks quote a 30-day window as the month
KIND_LABELS: dict[str, str] = {
    "right_sizing": "Model right-sizing",
    "prompt_caching": "Prompt caching",
    "batch_api": "Batch API",
    "duplicate_requests": "Duplicates and loops",
    "long_context": "Long-context premium",
    "failed_calls": "Failed calls",
}


@dataclass(frozen=True)
class LatestRun:
    run_id: UUID
    computed_at: datetime
    window_start: date
    window_end: date


# --- warehouse reads (synchronous: they run in the reader's worker thread) ----------------------------------


def latest_run(client: Client, m: Marts, workspace_id: UUID) -> LatestRun | None:
    """The workspace's newest logged run (argMax over the runs log: a row logged twice reads once)."""
    row = client.query(
        "SELECT count(), argMax(run_id, computed_at), max(computed_at), argMax(window_start, computed_at),"
        f" argMax(window_end, computed_at) FROM {m.marts}.recommendation_runs WHERE workspace_id = %(ws)s",
        parameters={"ws": workspace_id},
    ).result_rows[0]
    if not row[0]:
        return None
    return LatestRun(UUID(str(row[1])), spend.as_moment(row[2]), row[3], row[4])


def current_rows(client: Client, m: Marts, workspace_id: UUID) -> list[dict[str, Any]]:
    """The newest logged run's recommendations, biggest saving first (the README's query: rows of a run that
    died before logging are never read, and a row written twice reads once)."""
    return list(
        client.query(
            f"SELECT * FROM {m.marts}.recommendations WHERE workspace_id = %(ws)s AND run_id = ("
            f"  SELECT argMax(run_id, computed_at) FROM {m.marts}.recommendation_runs WHERE workspace_id = %(ws)s)"
            " ORDER BY monthly_saving_usd DESC, recommendation_id LIMIT 1 BY recommendation_id",
            parameters={"ws": workspace_id},
        ).named_results()
    )


def current_row(
    client: Client, m: Marts, workspace_id: UUID, recommendation_id: UUID
) -> dict[str, Any] | None:
    """One current recommendation of the workspace (None when it is not in the newest run, or another's)."""
    return next(
        (r for r in current_rows(client, m, workspace_id) if r["recommendation_id"] == recommendation_id),
        None,
    )


def catalog_rows(client: Client, m: Marts, workspace_id: UUID) -> list[tuple]:
    """Every check that fired per (kind, project, provider, model), over the logged runs, each run's row once."""
    return client.query(
        "SELECT kind, project, provider, model, min(computed_at), max(computed_at), uniqExact(run_id),"
        " argMax(monthly_saving_usd, computed_at), argMax(recommendation_id, computed_at)"
        " FROM ("
        f"  SELECT kind, project, provider, model, run_id, computed_at, monthly_saving_usd, recommendation_id"
        f"  FROM {m.marts}.recommendations WHERE workspace_id = %(ws)s"
        f"    AND run_id IN (SELECT run_id FROM {m.marts}.recommendation_runs WHERE workspace_id = %(ws)s)"
        "   LIMIT 1 BY run_id, recommendation_id)"
        " GROUP BY kind, project, provider, model ORDER BY max(computed_at) DESC, kind, project, provider, model",
        parameters={"ws": workspace_id},
    ).result_rows


def usage_since(
    client: Client, m: Marts, workspace_id: UUID, decision: RecommendationDecision, since: date
) -> tuple[list[str], int, Decimal]:
    """The scope's served models and its calls and spend from `since` on (`marts.daily_spend`, whole days).

    Right-sizing moves the calls to the target model, so its served names count too: the names the priced
    calls of this project resolved to the target card model (a dated snapshot matches by its prefix)."""
    params: dict[str, Any] = {
        "ws": workspace_id, "since": since, "project": decision.project, "provider": decision.provider,
        "scope": tuple(decision.scope_models) or ("",), "target": decision.target_model,
    }  # fmt: skip
    models = set(decision.scope_models)
    if decision.target_model:
        found = client.query(
            f"SELECT DISTINCT model FROM {m.marts}.requests WHERE workspace_id = %(ws)s AND day >= %(since)s"
            " AND project = %(project)s AND provider = %(provider)s"
            " AND (card_model = %(target)s OR startsWith(model, %(target)s))",
            parameters=params,
        ).result_rows
        models |= {model for (model,) in found}
    params["models"] = tuple(sorted(models)) or ("",)
    requests, spent = client.query(
        f"SELECT sum(requests), sum(spend_usd) FROM {m.marts}.daily_spend WHERE workspace_id = %(ws)s"
        " AND day >= %(since)s AND project = %(project)s AND provider = %(provider)s AND model IN %(models)s",
        parameters=params,
    ).result_rows[0]
    return sorted(models), int(requests or 0), spent or ZERO


def synced_since(client: Client, m: Marts, workspace_id: UUID, since: date) -> bool:
    """Whether the marts hold any of the workspace's calls from `since` on (the meters have synced since)."""
    return bool(
        client.query(
            f"SELECT count() FROM {m.marts}.daily_spend WHERE workspace_id = %(ws)s AND day >= %(since)s",
            parameters={"ws": workspace_id, "since": since},
        ).result_rows[0][0]
    )


# --- shaping ------------------------------------------------------------------------------------------------


def ignored_filters(view: View) -> list[str]:
    ignored = []
    if view.filters.range != "30d" or view.filters.start:
        ignored.append(
            f"range ({RANGES[view.filters.range].lower()}): the checks always cover their 30-day window"
        )
    if view.filters.devices:
        ignored.append("device: a recommendation is about a project's calls to a model, from every device")
    return ignored


def in_scope(
    scope: Scope, *, project: str, provider: str | None = None, models: Iterable[str] | None = None
) -> bool:
    """The rail's project, provider, model and cost-center filters (a model matches the card model or any of
    the served names behind it); a dimension given as None is not checked."""
    f = scope.filters
    if f.projects and project not in f.projects:
        return False
    if f.providers and provider is not None and provider not in f.providers:
        return False
    if f.models and models is not None and not set(f.models) & {*models, *map(base_model, models)}:
        return False
    if scope.cost_center_projects is not None:
        chosen = project in scope.cost_center_projects
        unassigned = UNASSIGNED in f.cost_centers and project not in scope.assigned_projects
        if not (chosen or unassigned):
            return False
    return True


def headline(kind: str, project: str, model: str, target_model: str, saving: Decimal, evidence: dict) -> str:
    """The change and its saving as one sentence, as the spec phrases it."""
    name = display_model(model)
    saves = f"save {money(saving)}/month"
    match kind:
        case "right_sizing":
            return f"Swap {name} → {display_model(target_model)} on {project} and {saves}."
        case "prompt_caching":
            return f"Cache the repeated prompts to {name} on {project} and {saves}."
        case "batch_api":
            return f"Send {name} calls on {project} through the batch API and {saves}."
        case "duplicate_requests":
            what = "the loop repeating" if evidence.get("loop_clusters") else "duplicate"
            return f"Stop {what} {name} calls on {project} and {saves}."
        case "long_context":
            tier = evidence.get("tier_threshold_tokens")
            under = f" under {int(tier):,} tokens" if tier else ""
            return f"Trim {name} prompts on {project}{under} and {saves}."
        case "failed_calls":
            return f"Stop paying for failed {name} calls on {project} and {saves}."
    return f"{project}: {kind} on {name}, {saves}."


def _recommendation(
    view: View, row: dict[str, Any], decision: RecommendationDecision | None
) -> RecommendationPublic:
    evidence = json.loads(row["evidence"] or "{}")
    uids, prids = row["sample_request_uids"], row["sample_provider_request_ids"]
    return RecommendationPublic(
        recommendation_id=row["recommendation_id"],
        kind=row["kind"],
        kind_label=KIND_LABELS.get(row["kind"], row["kind"]),
        project=row["project"],
        provider=row["provider"],
        model=row["model"],
        target_model=row["target_model"],
        headline=headline(
            row["kind"],
            row["project"],
            row["model"],
            row["target_model"],
            row["monthly_saving_usd"],
            evidence,
        ),
        title=row["title"],
        explanation=row["explanation"],
        monthly_saving_usd=row["monthly_saving_usd"],
        confidence=row["confidence"],
        confidence_rule=row["confidence_rule"],
        affected_requests=int(row["affected_requests"]),
        evidence=evidence,
        samples=[
            SampleRequest(request_uid=uid, provider_request_id=prid, href=f"/{view.slug}/traces/{uid}")
            for uid, prid in zip(uids, prids, strict=False)
        ],
        scope_models=list(row["scope_models"]),
        baseline_start=row["baseline_start"],
        baseline_end=row["baseline_end"],
        baseline_requests=int(row["baseline_requests"]),
        baseline_spend_usd=row["baseline_spend_usd"],
        realised_method=row["realised_method"],
        price_card=row["price_card"],
        status=decision.status if decision else "open",
        decided_at=decision.decided_at if decision else None,
        decided_by=decision.decided_by_label if decision else None,
    )


def _suppressed(suppressions: Sequence[CheckSuppression]) -> dict[tuple[str, str], CheckSuppression]:
    return {(s.kind, s.project): s for s in suppressions}


# --- the pages' builders ------------------------------------------------------------------------------------


async def build_optimization(view: View, conn: Connection) -> OptimizationPublic:
    ws = view.ctx.workspace.id
    decisions = {d.recommendation_id: d for d in await decisions_store.list_decisions(conn, workspace_id=ws)}
    suppressed = _suppressed(await decisions_store.list_suppressions(conn, workspace_id=ws))
    run, rows = await view.reader.run(
        lambda client, m: (latest_run(client, m, ws), current_rows(client, m, ws))
    )
    shown, hidden = [], 0
    for row in rows:
        if not in_scope(view.scope, project=row["project"], provider=row["provider"],
                        models=[row["model"], *row["scope_models"]]):  # fmt: skip
            continue
        if (row["kind"], row["project"]) in suppressed:
            hidden += 1
            continue
        shown.append(_recommendation(view, row, decisions.get(row["recommendation_id"])))
    realised = await build_realised(view, conn, decisions=list(decisions.values()))
    open_ = [r for r in shown if r.status == "open"]
    return OptimizationPublic(
        workspace=view.slug,
        filters=view.filters.as_json(),
        computed_at=run.computed_at if run else None,
        window_start=run.window_start if run else None,
        window_end=run.window_end if run else None,
        recommendations=shown,
        open_saving_usd=sum((r.monthly_saving_usd for r in open_), ZERO),
        open_count=len(open_),
        accepted_saving_usd=sum((r.monthly_saving_usd for r in shown if r.status == "accepted"), ZERO),
        suppressed_hidden=hidden,
        realised_saving_usd=realised.total_realised_usd if realised.with_data else None,
        ignored_filters=ignored_filters(view),
    )


async def build_catalog(view: View, conn: Connection) -> OptimizationCatalogPublic:
    ws = view.ctx.workspace.id
    suppressions = await decisions_store.list_suppressions(conn, workspace_id=ws)
    suppressed = _suppressed(suppressions)

    def query(client, m):
        return catalog_rows(client, m, ws), {r["recommendation_id"] for r in current_rows(client, m, ws)}

    rows, current = await view.reader.run(query)
    checks = []
    for kind, project, provider, model, first, last, runs, saving, latest_id in rows:
        if not in_scope(view.scope, project=project, provider=provider, models=[model]):
            continue
        s = suppressed.get((kind, project))
        checks.append(
            CatalogCheck(
                kind=kind, kind_label=KIND_LABELS.get(kind, kind), project=project, provider=provider, model=model,
                first_fired_at=spend.as_moment(first), last_fired_at=spend.as_moment(last), times_fired=int(runs),
                latest_saving_usd=saving, latest_recommendation_id=latest_id, active=latest_id in current,
                suppressed=s is not None, suppressed_at=s.suppressed_at if s else None,
                suppressed_by=s.suppressed_by_label if s else None,
            )
        )  # fmt: skip
    return OptimizationCatalogPublic(
        workspace=view.slug,
        filters=view.filters.as_json(),
        checks=checks,
        suppressions=[s for s in suppressions if in_scope(view.scope, project=s.project)],
        ignored_filters=ignored_filters(view),
    )


def acceptance_day(decision: RecommendationDecision) -> date:
    """The UTC day of a decision (the marts' days are UTC; Postgres may hand the time in another zone)."""
    return decision.decided_at.astimezone(UTC).date()


def realised(
    decision: RecommendationDecision, *, models: list[str], requests: int, spent: Decimal, days: int,
    synced: bool, current: bool,
) -> RealisedSaving:  # fmt: skip
    """One accepted recommendation against the baseline it quoted (README, "Realised savings"):
    per_request: baseline cost per request * calls since - spend since (the calls stay, each costs less);
    per_day: baseline spend per day * days since - spend since (the wasted calls go away).
    Nothing is clamped: costing more than the baseline shows as a negative saving."""
    d = decision
    if d.realised_method == "per_request":
        has_data = requests > 0
        baseline = d.baseline_cost_per_request_usd * requests
        expected = d.expected_saving_per_request_usd * requests
    else:
        has_data = synced  # no calls at all is the point of a per-day fix, once the meters have synced since
        baseline = d.baseline_spend_per_day_usd * days
        expected = d.monthly_saving_usd * days / MONTH_DAYS
    return RealisedSaving(
        recommendation_id=d.recommendation_id,
        # The evidence is not copied at acceptance; the stored title says whether the duplicates were a loop.
        headline=headline(d.kind, d.project, d.model, d.target_model, d.monthly_saving_usd,
                          {"loop_clusters": int(d.title.startswith("Stop the loop"))}),
        kind=d.kind, kind_label=KIND_LABELS.get(d.kind, d.kind), project=d.project, provider=d.provider,
        model=d.model, target_model=d.target_model, accepted_at=d.decided_at, accepted_by=d.decided_by_label,
        realised_method=d.realised_method, measured_models=models, since=acceptance_day(d), days_since=days,
        requests_since=requests, spend_since_usd=spent,
        baseline_cost_per_request_usd=d.baseline_cost_per_request_usd,
        baseline_spend_per_day_usd=d.baseline_spend_per_day_usd,
        baseline_usd=baseline if has_data else None, realised_usd=baseline - spent if has_data else None,
        expected_usd=expected if has_data else None, monthly_saving_usd=d.monthly_saving_usd, has_data=has_data,
        current=current,
    )  # fmt: skip


async def build_realised(
    view: View, conn: Connection, *, decisions: Sequence[RecommendationDecision] | None = None
) -> RealisedSavingsPublic:
    """Every accepted recommendation in the rail's scope: usage since the day it was accepted (counted whole:
    the marts are daily) against its baseline, oldest acceptance first."""
    ws = view.ctx.workspace.id
    if decisions is None:
        decisions = await decisions_store.list_decisions(conn, workspace_id=ws, status="accepted")
    accepted = [
        d for d in decisions
        if d.status == "accepted" and in_scope(view.scope, project=d.project, provider=d.provider,
                                               models=[d.model, d.target_model, *d.scope_models])
    ]  # fmt: skip
    today = view.scope.now.date()

    def query(client, m):
        current = {r["recommendation_id"] for r in current_rows(client, m, ws)} if accepted else set()
        measured = []
        for d in accepted:
            since = acceptance_day(d)
            models, requests, spent = usage_since(client, m, ws, d, since)
            measured.append((d, models, requests, spent, synced_since(client, m, ws, since)))
        return current, measured

    current, measured = await view.reader.run(query)
    savings = []
    for d, models, requests, spent, synced in measured:
        days = max((today - acceptance_day(d)).days + 1, 1)
        savings.append(
            realised(d, models=models, requests=requests, spent=spent, days=days, synced=synced,
                     current=d.recommendation_id in current)
        )  # fmt: skip
    with_data = [s for s in savings if s.has_data]
    return RealisedSavingsPublic(
        workspace=view.slug,
        filters=view.filters.as_json(),
        savings=savings,
        total_realised_usd=sum((s.realised_usd or ZERO for s in with_data), ZERO),
        total_expected_usd=sum((s.expected_usd or ZERO for s in with_data), ZERO),
        with_data=len(with_data),
        without_data=len(savings) - len(with_data),
        ignored_filters=ignored_filters(view),
    )
