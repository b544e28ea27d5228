"""The HTTP every live billing client shares: JSON in and out with decimals kept exact, retries of what is
worth retrying (connection errors, 408, 409, 429, 5xx) with exponential backoff that honours `Retry-After`,
refusals that say which provider refused what and what to do next, and `has_more`/`next_page` paging."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx

from halton_meter.billing_apis.billing_contract import BillingAPIError
from halton_meter.retry_after import parse_retry_after

log = logging.getLogger(__name__)


RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 529})
MAX_PAGES = 1000


@dataclass
class RetryPolicy:
    attempts: int = 5
    backoff_seconds: float = 1.0
    max_backoff_seconds: float = 60.0
    sleep: Callable[[float], None] = time.sleep

    def delay(self, attempt: int, response: httpx.Response | None) -> float:
        if response is not None:
            after = parse_retry_after(response.headers.get("retry-after"))
            if after is not None:
                return min(after, self.max_backoff_seconds)
        return min(self.backoff_seconds * 2 ** (attempt - 1), self.max_backoff_seconds)


class BillingHTTP:
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


def day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start, start + timedelta(days=1)


def paged(fetch: Callable[[str | None], dict[str, Any]], name: str) -> Iterator[dict[str, Any]]:
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
