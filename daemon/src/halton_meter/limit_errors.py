"""The answer to a call refused at a project's hard limit: HTTP 429 with the body the provider's own API sends
for a rate or quota limit, so each official SDK raises its ``RateLimitError`` and tools show our message.

- Anthropic: ``{"type": "error", "error": {"type": "rate_limit_error", "message": …}}``
- OpenAI and xAI: ``{"error": {"message": …, "type": "insufficient_quota", "param": null, "code":
  "insufficient_quota"}}`` (OpenAI's 429 for a spend or usage limit: a limit waiting does not lift)
- Gemini: ``{"error": {"code": 429, "message": …, "status": "RESOURCE_EXHAUSTED"}}``

``x-should-retry: false`` tells the Anthropic and OpenAI SDKs not to retry (they otherwise retry a 429, and
each retry would only be refused again). No ``Retry-After``: the limit lifts when an owner raises the budget
or a developer overrides a call, neither of which has a time, so any number there would be made up.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal

from halton_meter.spend_limits import OVERRIDE_HEADER, OVERRIDE_VALUE, next_month

STATUS = 429


def message(project: str, budget_usd: Decimal, spend_usd: Decimal, now: datetime) -> str:
    resets = next_month(now).strftime("%Y-%m-%d")
    return (
        f"Halton Meter: project '{project}' has reached its monthly budget of ${budget_usd:,.2f} "
        f"(${spend_usd:,.2f} spent this month), which the workspace owner set as a hard limit, so this call "
        f"was not sent. To go on: ask an owner to raise the budget or turn the limit off (Halton cloud, "
        f"Settings > Projects & budgets); or let one call through with the header "
        f"'{OVERRIDE_HEADER}: {OVERRIDE_VALUE}' or `halton-meter override {project}`. "
        f"The budget starts again on {resets} (UTC)."
    )


def body(provider: str, text: str) -> dict:
    if provider == "anthropic":
        return {"type": "error", "error": {"type": "rate_limit_error", "message": text}}
    if provider == "gemini":
        return {"error": {"code": STATUS, "message": text, "status": "RESOURCE_EXHAUSTED"}}
    return {
        "error": {"message": text, "type": "insufficient_quota", "param": None, "code": "insufficient_quota"}
    }


def response_parts(provider: str, text: str) -> tuple[int, bytes, dict[str, str]]:
    """(status, body, headers) of the refusal."""
    return (
        STATUS,
        json.dumps(body(provider, text)).encode(),
        {"content-type": "application/json", "x-should-retry": "false", "x-halton-blocked": "budget"},
    )
