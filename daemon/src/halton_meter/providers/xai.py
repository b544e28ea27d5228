"""xAI (Grok): the OpenAI dialect, plus the billed cost and its own reasoning-token accounting.

- ``usage.cost_in_usd_ticks`` is what xAI billed for the call, after caching discounts and including
  server-side tool calls; 1 USD = 10^10 ticks. It becomes ``billed_cost_usd``, exactly (a Decimal
  built from the integer, never through a float).
- xAI has reported reasoning tokens both inside ``completion_tokens`` (as OpenAI does) and beside
  it (``total_tokens = prompt + completion + reasoning``), depending on model and date. ``total_tokens``
  tells which: when it equals prompt + completion + reasoning, reasoning is added to the output;
  otherwise it is taken as already included.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

from halton_meter.providers.json_body import count
from halton_meter.providers.openai import OpenAIParser
from halton_meter.providers.openai import request_info as openai_request_info
from halton_meter.usage import RequestInfo

logger = logging.getLogger(__name__)


def request_info(method: str, path: str, body: bytes) -> RequestInfo:
    """What an xAI request says about itself (the OpenAI dialect)."""
    return openai_request_info(method, path, body, provider="xai")


def ticks_to_usd(ticks: int) -> Decimal:
    """Exact dollars for a tick count: 37756000 ticks -> Decimal('0.0037756')."""
    return Decimal(ticks).scaleb(-10)


class XaiParser(OpenAIParser):
    """OpenAI-dialect parser that also reads xAI's billed cost."""

    def read_usage(self, wire: dict[str, Any]) -> None:
        super().read_usage(wire)
        ticks = count(wire.get("cost_in_usd_ticks"))
        if ticks is not None:
            self.usage.billed_cost_usd = ticks_to_usd(ticks)

    def output_with_reasoning(
        self, completion: int | None, reasoning: int | None, prompt: int | None, total: int | None
    ) -> tuple[int | None, int | None]:
        if completion is None or not reasoning:
            return completion, reasoning
        separate = (
            total == (prompt or 0) + completion + reasoning if total is not None else reasoning > completion
        )
        if separate:
            return completion + reasoning, reasoning
        return completion, reasoning
