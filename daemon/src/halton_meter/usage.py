"""What a provider parser reads out of one call, before pricing and attribution.

This is the seam between the provider parsers (``halton_meter.providers``), pricing
(``halton_meter.pricing``) and capture (``halton_meter.capture``). Token counts follow the
convention in ``halton_meter.protocol``: ``input_tokens`` includes every cached token,
``output_tokens`` includes reasoning tokens; ``None`` means unknown.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol


@dataclass
class Usage:
    """Token usage and identity of one call, filled in as the response is read."""

    model_served: str | None = None
    provider_request_id: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    cache_write_1h_tokens: int | None = None
    reasoning_tokens: int | None = None
    service_tier: str | None = None
    # Where the provider says it served the call (Anthropic ``usage.inference_geo``: "us", "global").
    region: str | None = None
    # Provider-reported billed cost, when the provider states it (xAI's cost_in_usd_ticks).
    billed_cost_usd: Decimal | None = None
    # Extra billable units that are not tokens (e.g. Anthropic server tool use: {"web_search_requests": 2}).
    extra_units: dict[str, int] = field(default_factory=dict)
    # False until the parser saw the message that closes the response (e.g. message_stop, [DONE]).
    complete: bool = False
    # Parse problems seen on this call (malformed SSE line, unexpected JSON); never raised to the proxy.
    parse_errors: int = 0


@dataclass(frozen=True)
class RequestInfo:
    """What capture knows about the request when the response starts."""

    provider: str
    endpoint: str  # normalised API path, e.g. "/v1/messages", "/v1/chat/completions"
    model_requested: str | None
    streamed: bool
    batch: bool = False  # a batch-API call, priced at the batch rate
    service_tier: str | None = None  # tier the client asked for (OpenAI "flex"/"priority", Anthropic)
    prompt_hash: str | None = None  # stable hash of the normalised request (model, system, messages, tools)
    # The batch or file id a batch results download names (its rows' request_uids derive from it).
    resource_id: str | None = None


class ResponseParser(Protocol):
    """Reads usage from a response as its bytes go by; never raises, never changes the bytes."""

    usage: Usage

    def feed(self, chunk: bytes) -> None:
        """Consume the next chunk of the response body (a whole JSON body or part of an SSE stream)."""

    def finish(self) -> Usage:
        """The response ended (normally or not): settle what was seen and return it."""
