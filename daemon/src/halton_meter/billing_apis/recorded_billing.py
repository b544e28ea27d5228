"""Billing API responses saved as JSON, replayed and parsed exactly as live answers are."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from halton_meter.billing_apis.anthropic_billing import parse_anthropic_costs, parse_anthropic_usage
from halton_meter.billing_apis.billing_contract import BilledLine, Credentials, UsageLine
from halton_meter.billing_apis.openai_billing import parse_openai_costs, parse_openai_usage
from halton_meter.billing_apis.xai_billing import parse_xai_usage


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
