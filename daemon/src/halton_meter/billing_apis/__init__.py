"""Clients for the providers' billing APIs: what each provider says it billed, day by day.

- OpenAI: `GET /v1/organization/costs` (amount.value in USD) and `GET /v1/organization/usage/completions`,
  admin key as a Bearer token; buckets of `bucket_width=1d`, pages chained by `page=<next_page>` while
  `has_more` is true.
- Anthropic: `GET /v1/organizations/cost_report` (amount is a decimal string in cents) and
  `GET /v1/organizations/usage_report/messages`, admin key in `x-api-key`; same `has_more`/`next_page` pages.
- xAI: `POST /v1/billing/teams/{team_id}/usage` on the management API (management key as a Bearer token),
  an analytics query answered with `timeSeries[].dataPoints[]`; no pages.

Every client retries what is worth retrying (connection errors, 408, 409, 429 and 5xx) with exponential
backoff, honours `Retry-After` on 429/503, and fails with a message that says which provider refused what
and what to do next. Parsing is pure (`parse_*`), so a recorded response parses exactly like a live one:
`RecordedBillingClient` replays responses saved as JSON files.
"""

from __future__ import annotations

import email.utils
import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

import httpx

log = logging.getLogger(__name__)

OPENAI_BASE_URL = "https://api.openai.com"
ANTHROPIC_BASE_URL = "https://api.anthropic.com"
XAI_MANAGEMENT_BASE_URL = "https://management-api.x.ai"
ANTHROPIC_VERSION = "2023-06-01"
RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 529})
MAX_PAGES = 1000


class BillingAPIError(RuntimeError):
    """A billing API refused or failed a request in a way retrying does not fix."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class BilledLine:
    """One line of what a provider billed for one day (USD)."""

    day: date
    line_item: str
    amount: Decimal
    model: str = ""
    provider_project: str = ""
    currency: str = "USD"


@dataclass(frozen=True)
class UsageLine:
    """Tokens a provider counted for one model on one day (input includes cached tokens)."""

    day: date
    model: str
    input_tokens: int
    cached_input_tokens: int
    cache_write_tokens: int
    output_tokens: int
    requests: int | None = None
    provider_project: str = ""


@dataclass(frozen=True)
class Credentials:
    """A provider admin (or management) key, and the xAI team it belongs to."""

    admin_key: str
    team_id: str | None = None


class BillingClient(Protocol):
    provider: str
    source: str

    def costs(self, credentials: Credentials, day: date) -> list[BilledLine]: ...

    def usage(self, credentials: Credentials, day: date) -> list[UsageLine]: ...


# --- HTTP with retries -----------------------------------------------------------------------------------


@dataclass
class RetryPolicy:
    attempts: int = 5
    backoff_seconds: float = 1.0
    max_backoff_seconds: float = 60.0
    sleep: Callable[[float], None] = time.sleep

    def delay(self, attempt: int, response: httpx.Response | None) -> float:
        if response is not None:
            after = retry_after_seconds(response.headers.get("retry-after"))
            if after is not None:
                return min(after, self.max_backoff_seconds)
        return min(self.backoff_seconds * 2 ** (attempt - 1), self.max_backoff_seconds)


def retry_after_seconds(value: str | None) -> float | None:
    """`Retry-After` as seconds: a number of seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


class _HTTP:
    """One provider's HTTP calls: JSON in and out, decimals kept exact, retries per `RetryPolicy`."""

    def __init__(
        self, name: str, base_url: str, *, timeout: float, retry: RetryPolicy, transport: Any = None
    ) -> None:
        self.name = name
        self.retry = retry
        self.client = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout, transport=transport)

    def request(
        self, method: str, path: str, *, headers: dict[str, str], params: Any = None, body: Any = None
    ) -> Any:
        attempt = 0
        while True:
            attempt += 1
            response: httpx.Response | None = None
            try:
                response = self.client.request(method, path, headers=headers, params=params, json=body)
            except httpx.TransportError as error:
                if attempt >= self.retry.attempts:
                    raise BillingAPIError(
                        f"{self.name} billing API unreachable at {self.client.base_url} after {attempt} attempts: "
                        f"{error}; check the network and retry the partition"
                    ) from error
                wait = self.retry.delay(attempt, None)
                log.warning("%s billing API: %s; retrying in %.1fs", self.name, error, wait)
                self.retry.sleep(wait)
                continue
            if response.status_code < 400:
                return json.loads(response.content, parse_float=Decimal)
            if response.status_code in RETRY_STATUSES and attempt < self.retry.attempts:
                wait = self.retry.delay(attempt, response)
                log.warning(
                    "%s billing API answered %d to %s %s; retrying in %.1fs",
                    self.name, response.status_code, method, path, wait,
                )  # fmt: skip
                self.retry.sleep(wait)
                continue
            raise BillingAPIError(
                _refusal(self.name, method, path, response, attempt), status=response.status_code
            )

    def close(self) -> None:
        self.client.close()


def _refusal(name: str, method: str, path: str, response: httpx.Response, attempts: int) -> str:
    detail = response.text[:300].strip()
    if response.status_code in (401, 403):
        return (
            f"{name} refused the admin key ({response.status_code}) for {method} {path}: {detail}. "
            f"Save a valid {name} admin key for this workspace's provider connection."
        )
    if response.status_code in RETRY_STATUSES:
        return (
            f"{name} billing API still failing ({response.status_code}) after {attempts} attempts: {detail}"
        )
    return f"{name} billing API rejected {method} {path} ({response.status_code}): {detail}"


def _day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start, start + timedelta(days=1)


def _paged(fetch: Callable[[str | None], dict[str, Any]], name: str) -> Iterator[dict[str, Any]]:
    """Pages of a `has_more`/`next_page` API until it says there are no more."""
    cursor: str | None = None
    seen: set[str] = set()
    for _ in range(MAX_PAGES):
        page = fetch(cursor)
        yield page
        if not page.get("has_more"):
            return
        cursor = page.get("next_page")
        if not cursor or cursor in seen:
            raise BillingAPIError(
                f"{name} billing API said has_more but gave no new next_page cursor ({cursor!r})"
            )
        seen.add(cursor)
    raise BillingAPIError(f"{name} billing API returned more than {MAX_PAGES} pages; narrow the date range")


# --- OpenAI ----------------------------------------------------------------------------------------------


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
        self.http = _HTTP(
            "OpenAI", base_url, timeout=timeout, retry=retry or RetryPolicy(), transport=transport
        )

    def _pages(
        self, path: str, credentials: Credentials, day: date, group_by: list[str]
    ) -> Iterator[dict[str, Any]]:
        start, end = _day_bounds(day)
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

        return _paged(fetch, "OpenAI")

    def costs(self, credentials: Credentials, day: date) -> list[BilledLine]:
        pages = self._pages("/v1/organization/costs", credentials, day, ["line_item", "project_id"])
        return [line for page in pages for line in parse_openai_costs(page) if line.day == day]

    def usage(self, credentials: Credentials, day: date) -> list[UsageLine]:
        pages = self._pages("/v1/organization/usage/completions", credentials, day, ["model", "project_id"])
        return [line for page in pages for line in parse_openai_usage(page) if line.day == day]


# --- Anthropic -------------------------------------------------------------------------------------------


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
        self.http = _HTTP(
            "Anthropic", base_url, timeout=timeout, retry=retry or RetryPolicy(), transport=transport
        )

    def _pages(
        self, path: str, credentials: Credentials, day: date, group_by: list[str]
    ) -> Iterator[dict[str, Any]]:
        start, end = _day_bounds(day)
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

        return _paged(fetch, "Anthropic")

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


# --- xAI -------------------------------------------------------------------------------------------------


def xai_usage_query(day: date) -> dict[str, Any]:
    start, end = _day_bounds(day)
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
        self.http = _HTTP("xAI", base_url, timeout=timeout, retry=retry or RetryPolicy(), transport=transport)

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


# --- recorded responses ----------------------------------------------------------------------------------


class RecordedBillingClient:
    """Replays billing API responses saved as JSON (`<provider>/costs/<day>.json`, `.../usage/<day>.json`),
    parsed exactly as live answers are. For tests and for working without provider keys."""

    _PARSERS: dict[
        str, tuple[Callable[[dict[str, Any]], list[Any]], Callable[[dict[str, Any]], list[Any]]]
    ] = {
        "openai": (parse_openai_costs, parse_openai_usage),
        "anthropic": (parse_anthropic_costs, parse_anthropic_usage),
        "xai": (parse_xai_usage, lambda body: []),
    }
    _SOURCES = {"openai": "openai_costs", "anthropic": "anthropic_cost_report", "xai": "xai_usage"}

    def __init__(self, provider: str, directory: Path) -> None:
        self.provider = provider
        self.source = self._SOURCES[provider]
        self.directory = Path(directory) / provider

    def _read(self, kind: str, day: date) -> list[dict[str, Any]]:
        path = self.directory / kind / f"{day.isoformat()}.json"
        if not path.exists():
            return []
        body = json.loads(path.read_text(), parse_float=Decimal)
        return body if isinstance(body, list) else [body]

    def costs(self, credentials: Credentials, day: date) -> list[BilledLine]:
        parse = self._PARSERS[self.provider][0]
        return [line for page in self._read("costs", day) for line in parse(page) if line.day == day]

    def usage(self, credentials: Credentials, day: date) -> list[UsageLine]:
        parse = self._PARSERS[self.provider][1]
        return [line for page in self._read("usage", day) for line in parse(page) if line.day == day]
