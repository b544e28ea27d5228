"""A fake of the providers' billing APIs on 127.0.0.1, speaking their documented JSON.

One real HTTP server answers, per admin key, what a provider organisation billed:
- OpenAI `GET /v1/organization/costs` and `/v1/organization/usage/completions` (Bearer key; unix-second
  buckets; `amount: {value, currency}`; `has_more`/`next_page`, followed with `page=`);
- Anthropic `GET /v1/organizations/cost_report` and `/v1/organizations/usage_report/messages` (`x-api-key` and
  `anthropic-version` headers; RFC 3339 buckets; `amount` a decimal string in cents);
- xAI `POST /v1/billing/teams/{team_id}/usage` (Bearer management key; `timeSeries[].dataPoints[]`).

Pages hold `page_size` results, so every multi-line day is paginated. Faults are scripted per path: the
first call to a path can answer 429 with `Retry-After` and the next one 503 (or 500), before the real answer.
Every request is recorded for assertions.
"""

from __future__ import annotations

import base64
import json
import threading
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class FakeCost:
    day: date
    line_item: str  # OpenAI line_item, Anthropic description, xAI model
    amount: Decimal  # USD (the server sends Anthropic's in cents)
    model: str = ""
    project: str | None = None


@dataclass(frozen=True)
class FakeUsage:
    day: date
    model: str
    uncached_input_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    output_tokens: int
    requests: int = 1


@dataclass
class Organisation:
    """What one admin key sees."""

    provider: str
    costs: list[FakeCost] = field(default_factory=list)
    usage: list[FakeUsage] = field(default_factory=list)
    team_id: str | None = None


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any
    status: int


class FakeBilling:
    """State of the fake: organisations by key, scripted faults by path, and what was asked."""

    def __init__(self, page_size: int = 2) -> None:
        self.page_size = page_size
        self.organisations: dict[str, Organisation] = {}
        self.faults: dict[str, list[tuple[int, dict[str, str]]]] = defaultdict(list)
        self.requests: list[Recorded] = []
        self.lock = threading.Lock()
        self.url = ""

    def add(self, admin_key: str, organisation: Organisation) -> None:
        self.organisations[admin_key] = organisation

    def fail_first(self, path: str, *statuses: int, retry_after: str = "0") -> None:
        """Answer the next calls to `path` with these statuses (429s carry Retry-After) before real answers."""
        for status in statuses:
            headers = {"Retry-After": retry_after} if status in (429, 503) else {}
            self.faults[path].append((status, headers))

    def calls(self, path_prefix: str) -> list[Recorded]:
        return [r for r in self.requests if r.path.startswith(path_prefix)]


def _page(items: list[Any], cursor: str | None, size: int) -> tuple[list[Any], bool, str | None]:
    start = int(base64.urlsafe_b64decode(cursor.encode()).decode()) if cursor else 0
    chunk = items[start : start + size]
    more = start + size < len(items)
    return chunk, more, base64.urlsafe_b64encode(str(start + size).encode()).decode() if more else None


def _day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _in_range(day: date, start: datetime, end: datetime | None) -> bool:
    moment = _day_start(day)
    return moment >= start and (end is None or moment < end)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def _handle(self, method: str) -> None:
        fake = self.server.fake
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        length = int(self.headers.get("content-length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        status, payload, headers = self._answer(method, parts.path, query, body)
        with fake.lock:
            fake.requests.append(
                Recorded(
                    method, parts.path, query, {k.lower(): v for k, v in self.headers.items()}, body, status
                )
            )
        data = json.dumps(payload, default=str).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _answer(
        self, method: str, path: str, query: dict[str, list[str]], body: Any
    ) -> tuple[int, Any, dict]:
        fake = self.server.fake
        with fake.lock:
            fault = fake.faults[path].pop(0) if fake.faults.get(path) else None
        if fault:
            status, headers = fault
            return status, {"error": {"type": "rate_limit_error" if status == 429 else "api_error"}}, headers
        if path.startswith("/v1/organization/"):
            return self._openai(path, query)
        if path.startswith("/v1/organizations/"):
            return self._anthropic(path, query)
        if path.startswith("/v1/billing/teams/") and method == "POST":
            return self._xai(path, body)
        return 404, {"error": {"message": f"no route {method} {path}"}}, {}

    def _organisation(self, key: str | None, provider: str) -> Organisation | None:
        org = self.server.fake.organisations.get(key or "")
        return org if org and org.provider == provider else None

    # OpenAI

    def _openai(self, path: str, query: dict[str, list[str]]) -> tuple[int, Any, dict]:
        auth = self.headers.get("authorization", "")
        org = self._organisation(auth.removeprefix("Bearer ").strip(), "openai")
        if org is None:
            return (
                401,
                {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}},
                {},
            )
        start = datetime.fromtimestamp(int(query["start_time"][0]), UTC)
        end = datetime.fromtimestamp(int(query["end_time"][0]), UTC) if "end_time" in query else None
        results: list[tuple[date, dict[str, Any]]] = []
        if path == "/v1/organization/costs":
            for cost in org.costs:
                if _in_range(cost.day, start, end):
                    results.append((cost.day, {
                        "object": "organization.costs.result",
                        "amount": {"value": float(cost.amount), "currency": "usd"},
                        "line_item": cost.line_item,
                        # Like OpenAI: the project only when the costs are grouped by it.
                        "project_id": cost.project if "project_id" in query.get("group_by", []) else None,
                    }))  # fmt: skip
        elif path == "/v1/organization/usage/completions":
            for use in org.usage:
                if _in_range(use.day, start, end):
                    results.append((use.day, {
                        "object": "organization.usage.completions.result",
                        "input_tokens": use.uncached_input_tokens + use.cache_read_tokens,
                        "output_tokens": use.output_tokens,
                        "input_cached_tokens": use.cache_read_tokens,
                        "num_model_requests": use.requests,
                        "project_id": None, "user_id": None, "api_key_id": None,
                        "model": use.model, "batch": None,
                    }))  # fmt: skip
        else:
            return 404, {"error": {"message": f"unknown path {path}"}}, {}
        page, more, cursor = _page(results, (query.get("page") or [None])[0], self.server.fake.page_size)
        buckets: dict[date, list[dict[str, Any]]] = defaultdict(list)
        for day, result in page:
            buckets[day].append(result)
        return (
            200,
            {
                "object": "page",
                "data": [
                    {
                        "object": "bucket",
                        "start_time": int(_day_start(day).timestamp()),
                        "end_time": int((_day_start(day) + timedelta(days=1)).timestamp()),
                        "results": rows,
                    }
                    for day, rows in sorted(buckets.items())
                ],
                "has_more": more,
                "next_page": cursor,
            },
            {},
        )

    # Anthropic

    def _anthropic(self, path: str, query: dict[str, list[str]]) -> tuple[int, Any, dict]:
        if self.headers.get("anthropic-version") != "2023-06-01":
            return (
                400,
                {
                    "type": "error",
                    "error": {
                        "type": "invalid_request_error",
                        "message": "anthropic-version header is required",
                    },
                },
                {},
            )
        org = self._organisation(self.headers.get("x-api-key"), "anthropic")
        if org is None:
            return (
                401,
                {"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}},
                {},
            )
        start = datetime.fromisoformat(query["starting_at"][0].replace("Z", "+00:00"))
        end = (
            datetime.fromisoformat(query["ending_at"][0].replace("Z", "+00:00"))
            if "ending_at" in query
            else None
        )
        results: list[tuple[date, dict[str, Any]]] = []
        if path == "/v1/organizations/cost_report":
            for cost in org.costs:
                if _in_range(cost.day, start, end):
                    results.append((cost.day, {
                        "currency": "USD",
                        "amount": str(cost.amount * 100),
                        # Like Anthropic: the workspace only when the report is grouped by it.
                        "workspace_id": cost.project if "workspace_id" in query.get("group_by[]", []) else None,
                        "description": cost.line_item,
                        "cost_type": "tokens",
                        "context_window": "0-200k",
                        "model": cost.model or None,
                        "service_tier": "standard",
                        "token_type": None,
                    }))  # fmt: skip
        elif path == "/v1/organizations/usage_report/messages":
            for use in org.usage:
                if _in_range(use.day, start, end):
                    results.append((use.day, {
                        "uncached_input_tokens": use.uncached_input_tokens,
                        "cache_creation": {"ephemeral_1h_input_tokens": 0,
                                           "ephemeral_5m_input_tokens": use.cache_write_tokens},
                        "cache_read_input_tokens": use.cache_read_tokens,
                        "output_tokens": use.output_tokens,
                        "server_tool_use": {"web_search_requests": 0},
                        "api_key_id": None, "workspace_id": None, "model": use.model,
                        "service_tier": "standard", "context_window": "0-200k",
                    }))  # fmt: skip
        else:
            return 404, {"type": "error", "error": {"type": "not_found_error", "message": path}}, {}
        page, more, cursor = _page(results, (query.get("page") or [None])[0], self.server.fake.page_size)
        buckets: dict[date, list[dict[str, Any]]] = defaultdict(list)
        for day, result in page:
            buckets[day].append(result)
        return (
            200,
            {
                "data": [
                    {
                        "starting_at": _day_start(day).strftime("%Y-%m-%dT%H:%M:%SZ"),
                        "ending_at": (_day_start(day) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                        "results": rows,
                    }
                    for day, rows in sorted(buckets.items())
                ],
                "has_more": more,
                "next_page": cursor,
            },
            {},
        )

    # xAI

    def _xai(self, path: str, body: Any) -> tuple[int, Any, dict]:
        team = path.removeprefix("/v1/billing/teams/").removesuffix("/usage")
        auth = self.headers.get("authorization", "")
        org = self._organisation(auth.removeprefix("Bearer ").strip(), "xai")
        if org is None:
            return 401, {"code": 16, "message": "unauthenticated"}, {}
        if team != org.team_id:
            return 403, {"code": 7, "message": f"no access to team {team}"}, {}
        window = body["analyticsRequest"]["timeRange"]
        start = datetime.strptime(window["startTime"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
        end = datetime.strptime(window["endTime"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
        series: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for cost in org.costs:
            if _in_range(cost.day, start, end):
                series[cost.line_item].append(
                    {
                        "timestamp": _day_start(cost.day).strftime("%Y-%m-%dT%H:%M:%SZ"),
                        "values": [float(cost.amount)],
                    }
                )
        return (
            200,
            {
                "timeSeries": [
                    {"group": [model], "groupLabels": [model], "dataPoints": points}
                    for model, points in series.items()
                ],
                "limitReached": False,
            },
            {},
        )


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, fake: FakeBilling) -> None:
        self.fake = fake
        super().__init__(("127.0.0.1", 0), _Handler)


@contextmanager
def serve(fake: FakeBilling) -> Iterator[FakeBilling]:
    """Run the fake on a free port of 127.0.0.1 until the block ends; `fake.url` is its base URL."""
    server = _Server(fake)
    thread = threading.Thread(target=server.serve_forever, name="fake-billing", daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
