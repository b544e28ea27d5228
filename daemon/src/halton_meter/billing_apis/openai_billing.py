"""OpenAI's billing: `GET /v1/organization/costs` (amount.value in USD) and
`GET /v1/organization/usage/completions`, admin key as a Bearer token; buckets of `bucket_width=1d`, pages
chained by `page=<next_page>` while `has_more` is true."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from halton_meter.billing_apis.billing_contract import BilledLine, Credentials, UsageLine
from halton_meter.billing_apis.billing_http import BillingHTTP, RetryPolicy, day_bounds, paged

OPENAI_BASE_URL = "https://api.openai.com"


def parse_openai_costs(page: dict[str, Any]) -> list[BilledLine]:
    lines = []
    for bucket in page.get("data") or []:
        day = datetime.fromtimestamp(int(bucket["start_time"]), UTC).date()
        for result in bucket.get("results") or []:
            amount = result.get("amount") or {}
            line_item = result.get("line_item") or ""
            lines.append(
                BilledLine(
                    day=day,
                    line_item=line_item,
                    amount=Decimal(str(amount.get("value", 0))),
                    model=line_item.split(",", 1)[0].strip() if "," in line_item else "",
                    provider_project=result.get("project_id") or "",
                    currency=str(amount.get("currency") or "usd").upper(),
                )
            )
    return lines


def parse_openai_usage(page: dict[str, Any]) -> list[UsageLine]:
    lines = []
    for bucket in page.get("data") or []:
        day = datetime.fromtimestamp(int(bucket["start_time"]), UTC).date()
        for result in bucket.get("results") or []:
            lines.append(
                UsageLine(
                    day=day,
                    model=result.get("model") or "",
                    input_tokens=int(result.get("input_tokens") or 0),
                    cached_input_tokens=int(result.get("input_cached_tokens") or 0),
                    cache_write_tokens=0,
                    output_tokens=int(result.get("output_tokens") or 0),
                    requests=result.get("num_model_requests"),
                    provider_project=result.get("project_id") or "",
                )
            )
    return lines


class OpenAIBillingClient:
    provider = "openai"
    source = "openai_costs"

    def __init__(
        self,
        base_url: str = OPENAI_BASE_URL,
        *,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        transport: Any = None,
    ) -> None:
        self.http = BillingHTTP(
            "OpenAI", base_url, timeout=timeout, retry=retry or RetryPolicy(), transport=transport
        )

    def _pages(
        self, path: str, credentials: Credentials, day: date, group_by: list[str]
    ) -> Iterator[dict[str, Any]]:
        start, end = day_bounds(day)
        headers = {"Authorization": f"Bearer {credentials.admin_key}"}

        def fetch(cursor: str | None) -> dict[str, Any]:
            params: list[tuple[str, str | int]] = [
                ("start_time", int(start.timestamp())), ("end_time", int(end.timestamp())),
                ("bucket_width", "1d"), ("limit", 7),
            ]  # fmt: skip
            params += [("group_by", g) for g in group_by]
            if cursor:
                params.append(("page", cursor))
            return self.http.request("GET", path, headers=headers, params=params)

        return paged(fetch, "OpenAI")

    def costs(self, credentials: Credentials, day: date) -> list[BilledLine]:
        pages = self._pages("/v1/organization/costs", credentials, day, ["line_item", "project_id"])
        return [line for page in pages for line in parse_openai_costs(page) if line.day == day]

    def usage(self, credentials: Credentials, day: date) -> list[UsageLine]:
        pages = self._pages("/v1/organization/usage/completions", credentials, day, ["model", "project_id"])
        return [line for page in pages for line in parse_openai_usage(page) if line.day == day]
