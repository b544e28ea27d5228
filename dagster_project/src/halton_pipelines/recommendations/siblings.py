"""Each large model's cheaper sibling in the same provider family, by price-card model id.

One step down, never across families or providers: the sibling keeps the API, the tool-use format and the
context window the workload already relies on, so the swap is a one-line change. Ids are the price
catalogue's (`raw.rate_rows.model`); a pair whose sibling has no price in the catalogue is skipped.
"""

from __future__ import annotations

CHEAPER_SIBLINGS: dict[str, dict[str, str]] = {
    "anthropic": {
        "claude-opus-4-1": "claude-sonnet-4-5",
        "claude-opus-4-0": "claude-sonnet-4-0",
        "claude-opus-4-5": "claude-sonnet-4-5",
        "claude-opus-4-6": "claude-sonnet-4-6",
        "claude-opus-4-7": "claude-sonnet-4-6",
        "claude-sonnet-4-6": "claude-haiku-4-5",
        "claude-sonnet-4-5": "claude-haiku-4-5",
        "claude-sonnet-4-0": "claude-haiku-4-5",
        "claude-3-7-sonnet-latest": "claude-3-5-haiku-latest",
        "claude-3-5-sonnet": "claude-3-5-haiku-latest",
    },
    "openai": {
        "gpt-5": "gpt-5-mini",
        "gpt-5.1": "gpt-5-mini",
        "gpt-5-mini": "gpt-5-nano",
        "gpt-5.4": "gpt-5.4-mini",
        "gpt-5.4-mini": "gpt-5.4-nano",
        "gpt-4.1": "gpt-4.1-mini",
        "gpt-4.1-mini": "gpt-4.1-nano",
        "gpt-4o": "gpt-4o-mini",
        "o3": "o4-mini",
    },
    "gemini": {
        "gemini-2.5-pro": "gemini-2.5-flash",
        "gemini-2.5-flash": "gemini-2.5-flash-lite",
        "gemini-3-pro-preview": "gemini-3-flash-preview",
        "gemini-3.1-pro-preview": "gemini-3-flash-preview",
        "gemini-2.0-flash": "gemini-2.0-flash-lite",
    },
    "xai": {
        "grok-4-0709": "grok-4-fast-reasoning",
        "grok-3": "grok-3-mini",
        "grok-3-fast": "grok-3-mini-fast",
    },
}


def cheaper_sibling(provider: str, card_model: str) -> str | None:
    return CHEAPER_SIBLINGS.get(provider, {}).get(card_model)
