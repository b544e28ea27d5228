"""One run of the checks: read the window's usage, run every check, write the full set.

The asset calls `run_recommendations`; tests call `compute` to get the recommendations without writing
them. Nothing here reads the clock except for the run's own id and time stamp, which say which run wrote a
row, never what it recommends.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from clickhouse_connect.driver.client import Client

from halton_pipelines.recommendations.checks import run_checks
from halton_pipelines.recommendations.quoted_prices import load_card_prices
from halton_pipelines.recommendations.recommendation import Recommendation
from halton_pipelines.recommendations.recommendation_sets import fits, previously_covered, write_run
from halton_pipelines.recommendations.window_usage import Window, read_repeats, read_window, read_workloads

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunSummary:
    run_id: uuid.UUID
    computed_at: datetime
    window: Window | None
    recommendations: list[Recommendation]
    per_workspace: dict[uuid.UUID, int]
    # Recommendations left out because an amount does not fit the table's money columns (`store.fits`).
    too_large: int = 0


def compute(
    client: Client, marts: str, staging: str, window: Window | None = None
) -> tuple[Window | None, list[Recommendation]]:
    """Every recommendation over `window` (default: the window the marts were built over)."""
    window = window or read_window(client, marts)
    if window is None:
        return None, []
    workloads = read_workloads(client, staging, window)
    repeats = read_repeats(client, staging, marts, window)
    prices = load_card_prices(client, staging, window.end)
    return window, run_checks(workloads, repeats, prices, window)


def run_recommendations(
    client: Client, marts: str, staging: str, *, window: Window | None = None
) -> RunSummary:
    """Compute and write one run: every workspace with usage in the window, and every one an earlier run
    covered (so a workspace whose usage stopped gets an empty set, not its old one)."""
    run_id, computed_at = uuid.uuid4(), datetime.now(UTC)
    window, recommendations = compute(client, marts, staging, window)
    if window is None:
        log.info("recommendations: the marts hold no 30-day usage yet; nothing to check")
        return RunSummary(run_id, computed_at, None, [], {})
    covered = previously_covered(client, marts) | _workspaces_with_usage(client, marts)
    storable = [r for r in recommendations if fits(r)]
    too_large = len(recommendations) - len(storable)
    if too_large:
        log.warning(
            "recommendations: %d left out, their amounts past the table's Decimal(18, 9) (workspaces %s)",
            too_large,
            ", ".join(sorted({str(r.workspace_id) for r in recommendations if not fits(r)})),
        )
    counts = write_run(
        client,
        marts,
        storable,
        workspaces=covered,
        window=window,
        run_id=run_id,
        computed_at=computed_at,
    )
    return RunSummary(run_id, computed_at, window, storable, counts, too_large)


def _workspaces_with_usage(client: Client, marts: str) -> set[uuid.UUID]:
    return {
        value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
        for (value,) in client.query(f"SELECT DISTINCT workspace_id FROM {marts}.model_usage_30d").result_rows
    }
