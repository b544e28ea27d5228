"""The recommendations in the warehouse: one full set per run, and the read of the current set.

A run writes every recommendation it found, then logs itself once per workspace it covered in
`recommendation_runs` (also for a workspace where it found nothing). The current set of a workspace is the
rows of its newest logged run, so a pattern that went away is gone from the next run, and rows of a run that
died before logging are never read. Both tables are ReplacingMergeTrees and every read dedupes (LIMIT 1 BY):
merges are never trusted.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from clickhouse_connect.driver.client import Client

from halton_pipelines.recommendations.recommendation import Recommendation
from halton_pipelines.recommendations.window_usage import Window

RECOMMENDATION_COLUMNS: tuple[str, ...] = (
    "workspace_id", "run_id", "computed_at", "recommendation_id", "kind", "project", "provider", "model",
    "target_model", "title", "explanation", "monthly_saving_usd", "confidence", "confidence_rule",
    "affected_requests", "evidence", "sample_request_uids", "sample_provider_request_ids", "scope_models",
    "baseline_start", "baseline_end", "baseline_requests", "baseline_spend_usd", "baseline_input_tokens",
    "baseline_output_tokens", "baseline_spend_per_day_usd", "baseline_cost_per_request_usd",
    "expected_saving_per_request_usd", "realised_method", "price_card",
)  # fmt: skip

RUN_COLUMNS: tuple[str, ...] = (
    "workspace_id", "run_id", "computed_at", "window_start", "window_end", "recommendations",
)  # fmt: skip

# Columns that say which run wrote a row and when, not what it recommends.
RUN_MARKERS = ("run_id", "computed_at")

# The table keeps money as Decimal(18, 9) (warehouse migration 0004): less than 10**9 USD either way.
MONEY_LIMIT = Decimal(10**9)


def fits(recommendation: Recommendation) -> bool:
    """Whether every amount of `recommendation` fits the table's money columns. A meter may log calls of up to
    a billion dollars each, so a workload's figures can be larger: such a recommendation cannot be stored,
    and one that could not would fail the run's INSERT for every workspace."""
    r, b = recommendation, recommendation.baseline
    amounts = (
        r.monthly_saving_usd,
        r.expected_saving_per_request_usd,
        b.spend_usd,
        b.spend_per_day_usd,
        b.cost_per_request_usd,
    )
    return all(abs(amount) < MONEY_LIMIT for amount in amounts)


def row_of(recommendation: Recommendation, run_id: uuid.UUID, computed_at: datetime) -> list[Any]:
    r, b = recommendation, recommendation.baseline
    return [
        r.workspace_id, run_id, computed_at, r.id, r.kind, r.project, r.provider, r.model, r.target_model,
        r.title, r.explanation, r.monthly_saving_usd, r.confidence, r.confidence_rule, r.affected_requests,
        r.evidence_json(), [s.request_uid for s in r.samples], [s.provider_request_id for s in r.samples],
        list(r.scope_models), b.start, b.end, b.requests, b.spend_usd, b.input_tokens, b.output_tokens,
        b.spend_per_day_usd, b.cost_per_request_usd, r.expected_saving_per_request_usd, r.realised_method,
        r.price_card,
    ]  # fmt: skip


def previously_covered(client: Client, marts: str) -> set[uuid.UUID]:
    """Workspaces an earlier run logged: a run covers them again, so their set empties when usage stops."""
    return {
        value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
        for (value,) in client.query(
            f"SELECT DISTINCT workspace_id FROM {marts}.recommendation_runs"
        ).result_rows
    }


def write_run(
    client: Client,
    marts: str,
    recommendations: Sequence[Recommendation],
    *,
    workspaces: Iterable[uuid.UUID],
    window: Window,
    run_id: uuid.UUID,
    computed_at: datetime,
) -> dict[uuid.UUID, int]:
    """Write one run's full set, then log the run for every covered workspace; returns counts per workspace."""
    counts = {workspace: 0 for workspace in workspaces}
    for recommendation in recommendations:
        counts[recommendation.workspace_id] = counts.get(recommendation.workspace_id, 0) + 1
    if recommendations:
        client.insert(
            f"{marts}.recommendations",
            [row_of(r, run_id, computed_at) for r in recommendations],
            column_names=list(RECOMMENDATION_COLUMNS),
        )
    if counts:
        client.insert(
            f"{marts}.recommendation_runs",
            [
                [workspace, run_id, computed_at, window.start, window.end, n]
                for workspace, n in sorted(counts.items(), key=lambda item: str(item[0]))
            ],
            column_names=list(RUN_COLUMNS),
        )
    return counts


def current_sql(marts: str, workspace_id: uuid.UUID | str) -> str:
    """The current recommendations of one workspace, biggest saving first (the query the API runs)."""
    return f"""
        SELECT *
        FROM {marts}.recommendations
        WHERE workspace_id = '{uuid.UUID(str(workspace_id))}'
            AND run_id = (
                SELECT argMax(run_id, computed_at) FROM {marts}.recommendation_runs
                WHERE workspace_id = '{uuid.UUID(str(workspace_id))}'
            )
        ORDER BY monthly_saving_usd DESC, recommendation_id
        LIMIT 1 BY recommendation_id
    """


def read_current(client: Client, marts: str, workspace_id: uuid.UUID | str) -> list[dict[str, Any]]:
    return list(client.query(current_sql(marts, workspace_id)).named_results())
