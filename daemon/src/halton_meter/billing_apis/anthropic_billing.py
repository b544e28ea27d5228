"""Anthropic's billing: `GET /v1/organizations/cost_report` (amount is a decimal string in cents) and
`GET /v1/organizations/usage_report/messages`, admin key in `x-api-key`; `has_more`/`next_page` pages."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from halton_meter.billing_apis.billing_contract import BilledLine, Credentials, UsageLine
from halton_meter.billing_apis.billing_http import BillingHTTP, RetryPolicy, day_bounds, paged

ANTHROPIC_BASE_URL = "https://api.anthropic.com"
ANTHROPIC_VERSION = "2023-06-01"


def _anthropic_day(bucket: dict[str, Any]) -> date:
    return datetime.fromisoformat(str(bucket["starting_at"]).replace("Z", "+00:00")).astimezone(UTC).date()


def parse_anthropic_costs(page: dict[str, Any]) -> list[BilledLine]:
    """Anthropic's cost report: `amount` is a decimal string in the currency's lowest units (cents)."""
    lines = []
    for bucket in page.get("data") or []:
        day = _anthropic_day(bucket)
        for result in bucket.get("results") or []:
            parts = [
                result.get(name)
                for name in ("description", "cost_type", "token_type", "context_window", "service_tier")
                if result.get(name)
            ]
            line_item = " | ".join(dict.fromkeys(str(p) for p in parts)) or str(result.get("model") or "")
            lines.append(
                BilledLine(
                    day=day,
                    line_item=line_item,
                    amount=Decimal(str(result.get("amount") or "0")) / 100,
                    model=result.get("model") or "",
                    provider_project=result.get("workspace_id") or "",
                    currency=str(result.get("currency") or "USD").upper(),
                )
            )
    return lines


def parse_anthropic_usage(page: dict[str, Any]) -> list[UsageLine]:
    lines = []
    for bucket in page.get("data") or []:
        day = _anthropic_day(bucket)
        for result in bucket.get("results") or []:
            creation = result.get("cache_creation") or {}
            writes = int(creation.get("ephemeral_5m_input_tokens") or 0) + int(
                creation.get("ephemeral_1h_input_tokens") or 0
            )
            reads = int(result.get("cache_read_input_tokens") or 0)
            uncached = int(result.get("uncached_input_tokens") or 0)
            lines.append(
                UsageLine(
                    day=day,
                    model=result.get("model") or "",
                    # Our convention: input includes cache reads and writes (Anthropic reports them apart).
                    input_tokens=uncached + reads + writes,
                    cached_input_tokens=reads,
                    cache_write_tokens=writes,
                    output_tokens=int(result.get("output_tokens") or 0),
                    provider_project=result.get("workspace_id") or "",
                )
            )
    return lines


class AnthropicBillingClient:
    provider = "anthropic"
    source = "anthropic_cost_report"

    def __init__(
        self,
        base_url: str = ANTHROPIC_BASE_URL,
        *,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        transport: Any = None,
    ) -> None:
        self.http = BillingHTTP(
            "Anthropic", base_url, timeout=timeout, retry=retry or RetryPolicy(), transport=transport
        )

    def _pages(
        self, path: str, credentials: Credentials, day: date, group_by: list[str]
    ) -> Iterator[dict[str, Any]]:
        start, end = day_bounds(day)
        headers = {"x-api-key": credentials.admin_key, "anthropic-version": ANTHROPIC_VERSION}

        def fetch(cursor: str | None) -> dict[str, Any]:
            params: list[tuple[str, str | int]] = [
                ("starting_at", start.strftime("%Y-%m-%dT%H:%M:%SZ")),
                ("ending_at", end.strftime("%Y-%m-%dT%H:%M:%SZ")),
                ("bucket_width", "1d"),
            ]
            params += [("group_by[]", g) for g in group_by]
            if cursor:
                params.append(("page", cursor))
            return self.http.request("GET", path, headers=headers, params=params)

        return paged(fetch, "Anthropic")

    def costs(self, credentials: Credentials, day: date) -> list[BilledLine]:
        pages = self._pages(
            "/v1/organizations/cost_report", credentials, day, ["workspace_id", "description"]
        )
        return [line for page in pages for line in parse_anthropic_costs(page) if line.day == day]

    def usage(self, credentials: Credentials, day: date) -> list[UsageLine]:
        pages = self._pages(
            "/v1/organizations/usage_report/messages", credentials, day, ["model", "workspace_id"]
        )
        return [line for page in pages for line in parse_anthropic_usage(page) if line.day == day]
