"""xAI's billing: `POST /v1/billing/teams/{team_id}/usage` on the management API (management key as a
Bearer token), an analytics query answered with `timeSeries[].dataPoints[]`; no pages."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from halton_meter.billing_apis.billing_contract import BilledLine, BillingAPIError, Credentials, UsageLine
from halton_meter.billing_apis.billing_http import BillingHTTP, RetryPolicy, day_bounds

log = logging.getLogger(__name__)


XAI_MANAGEMENT_BASE_URL = "https://management-api.x.ai"


def xai_usage_query(day: date) -> dict[str, Any]:
    start, end = day_bounds(day)
    return {
        "analyticsRequest": {
            "timeRange": {
                "startTime": start.strftime("%Y-%m-%d %H:%M:%S"),
                "endTime": end.strftime("%Y-%m-%d %H:%M:%S"),
                "timezone": "Etc/GMT",
            },
            "timeUnit": "TIME_UNIT_DAY",
            "values": [{"name": "usd", "aggregation": "AGGREGATION_SUM"}],
            "groupBy": ["model"],
            "filters": [],
        }
    }


def parse_xai_usage(body: dict[str, Any]) -> list[BilledLine]:
    """xAI's analytics answer: one series per group, one data point (USD) per day; empty lists may be left out."""
    if body.get("limitReached"):
        log.warning("xAI usage answer hit its row limit: the day's lines may be incomplete")
    lines = []
    for series in body.get("timeSeries") or []:
        labels = series.get("groupLabels") or series.get("group") or []
        model = str(labels[0]) if labels else ""
        for point in series.get("dataPoints") or []:
            values = point.get("values") or [0]
            timestamp = datetime.fromisoformat(str(point["timestamp"]).replace("Z", "+00:00"))
            lines.append(
                BilledLine(
                    day=timestamp.astimezone(UTC).date(),
                    line_item=model or "xai",
                    amount=Decimal(str(values[0])),
                    model=model,
                )
            )
    return lines


class XAIBillingClient:
    provider = "xai"
    source = "xai_usage"

    def __init__(
        self,
        base_url: str = XAI_MANAGEMENT_BASE_URL,
        *,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        transport: Any = None,
    ) -> None:
        self.http = BillingHTTP(
            "xAI", base_url, timeout=timeout, retry=retry or RetryPolicy(), transport=transport
        )

    def costs(self, credentials: Credentials, day: date) -> list[BilledLine]:
        if not credentials.team_id:
            raise BillingAPIError(
                "the xAI connection has no team id: save the xAI team id with the management key"
            )
        body = self.http.request(
            "POST",
            f"/v1/billing/teams/{credentials.team_id}/usage",
            headers={"Authorization": f"Bearer {credentials.admin_key}"},
            body=xai_usage_query(day),
        )
        totals: dict[str, Decimal] = {}
        for line in parse_xai_usage(body):
            if line.day == day:
                totals[line.line_item] = totals.get(line.line_item, Decimal(0)) + line.amount
        return [
            BilledLine(day, item, amount, model=item if item != "xai" else "")
            for item, amount in totals.items()
        ]

    def usage(self, credentials: Credentials, day: date) -> list[UsageLine]:
        return []  # xAI's usage answer here is in USD; token counts are not pulled
