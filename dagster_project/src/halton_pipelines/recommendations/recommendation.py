"""A recommendation as it is stored: the change, the money it saves, the evidence, and the baseline it quoted.

The id comes from what the recommendation is about (workspace, project, provider, kind, card model), never
from when it was computed: the same pattern has the same id on every run, so decisions made on it (accept,
dismiss, suppress) stay attached, and the realised saving compares against the baseline stored here.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from halton_pipelines.recommendations.quoted_prices import money
from halton_pipelines.recommendations.thresholds import MONTH_DAYS
from halton_pipelines.recommendations.window_usage import Sample, Window, Workload

RECOMMENDATION_NAMESPACE = uuid.UUID("0b9b7d0e-7c55-4d1f-9a51-3f0c9d6e2a41")

# The checks, by the `kind` they write.
RIGHT_SIZING = "right_sizing"
PROMPT_CACHING = "prompt_caching"
BATCH_API = "batch_api"
DUPLICATE_REQUESTS = "duplicate_requests"
LONG_CONTEXT = "long_context"
FAILED_CALLS = "failed_calls"
KINDS = (RIGHT_SIZING, PROMPT_CACHING, BATCH_API, DUPLICATE_REQUESTS, LONG_CONTEXT, FAILED_CALLS)

# How the realised saving is measured after acceptance (see the README): the cost per call of the scope
# against the baseline's, or the spend per day against the baseline's (for checks that remove calls).
PER_REQUEST = "per_request"
PER_DAY = "per_day"


def recommendation_id(
    workspace_id: uuid.UUID, project: str, provider: str, kind: str, card_model: str
) -> uuid.UUID:
    return uuid.uuid5(
        RECOMMENDATION_NAMESPACE, "\x1f".join((str(workspace_id), project, provider, kind, card_model))
    )


@dataclass(frozen=True)
class Baseline:
    """The scope's usage over the window the saving was quoted on: what realised savings compare against."""

    start: date
    end: date
    requests: int
    spend_usd: Decimal
    input_tokens: int
    output_tokens: int

    @classmethod
    def of(cls, workload: Workload, window: Window) -> Baseline:
        return cls(
            window.start,
            window.end,
            workload.requests,
            money(workload.spend_usd),
            workload.input_tokens,
            workload.output_tokens,
        )

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    @property
    def spend_per_day_usd(self) -> Decimal:
        return money(self.spend_usd / self.days) if self.days else Decimal(0)

    @property
    def cost_per_request_usd(self) -> Decimal:
        return money(self.spend_usd / self.requests) if self.requests else Decimal(0)


@dataclass(frozen=True)
class Recommendation:
    workspace_id: uuid.UUID
    kind: str
    project: str
    provider: str
    model: str  # the card model the workload calls
    title: str
    explanation: str
    monthly_saving_usd: Decimal
    confidence: str
    confidence_rule: str
    affected_requests: int
    evidence: dict[str, Any]
    samples: tuple[Sample, ...]
    scope_models: tuple[str, ...]
    baseline: Baseline
    realised_method: str
    price_card: str
    target_model: str = ""
    id: uuid.UUID = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self,
            "id",
            recommendation_id(self.workspace_id, self.project, self.provider, self.kind, self.model),
        )

    @property
    def expected_saving_per_request_usd(self) -> Decimal:
        """The monthly saving spread over the baseline's calls, per call (scaled to the baseline's days)."""
        if not self.baseline.requests or not self.baseline.days:
            return Decimal(0)
        return money(self.monthly_saving_usd * self.baseline.days / MONTH_DAYS / self.baseline.requests)

    def evidence_json(self) -> str:
        """The evidence as JSON with sorted keys (Decimals as strings): the same evidence, the same text."""
        return json.dumps(self.evidence, sort_keys=True, default=_json_default, separators=(",", ":"))


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (uuid.UUID, date)):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
