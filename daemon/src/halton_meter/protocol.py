"""The batch wire format shared by the meter (sender) and the cloud (receiver).

This module is imported by the cloud API, so it must stay light: pydantic only, no mitmproxy.

Token convention (the same for every provider, whatever the provider's own wire calls them):
``input_tokens`` counts *all* prompt tokens, including cache reads and cache writes;
``cache_read_tokens``, ``cache_write_tokens`` (5-minute writes) and ``cache_write_1h_tokens`` are
subsets of it. ``output_tokens`` counts all generated tokens; ``reasoning_tokens`` is a subset of it.
A ``None`` token count means "not known" (an unknown endpoint, an interrupted stream), never zero.

The numeric bounds below keep each value inside the column the cloud stores it in (``raw.requests``, warehouse
migration 0005), so no row this model accepts can fail the cloud's INSERT; a test compares them with the
columns. How far back and ahead a call may have started is the cloud's policy, not the protocol's: the API
checks that against its settings (``halton_api.ingest_window``).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SCHEMA_VERSION = 1
MAX_ROWS_PER_BATCH = 5_000

# Column ranges of raw.requests (see the module docstring).
MAX_STATUS_CODE = 999  # HTTP's three digits, inside status_code's UInt16
MAX_TOKENS = 10**12  # far above any context window, inside the token columns' UInt64
MAX_DURATION_MS = 2**32 - 1  # latency_ms and ttfb_ms are UInt32: about 49.7 days
MAX_UNITS = 2**32 - 1  # per-call billable units (web_search_requests) are UInt32
COST_DIGITS, COST_DECIMALS = 18, 9  # cost_usd is Decimal(18, 9): below 10**9 USD, to the nano-dollar

Provider = Literal["anthropic", "openai", "gemini", "xai"]
AttributionTier = Literal["header", "api_key", "directory", "default"]

Slug = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._\-/]*$")]
TokenCount = Annotated[int, Field(ge=0, le=MAX_TOKENS)]
DurationMs = Annotated[int, Field(ge=0, le=MAX_DURATION_MS)]
Cost = Annotated[Decimal, Field(ge=0, max_digits=COST_DIGITS, decimal_places=COST_DECIMALS)]


class RequestRow(BaseModel):
    """One metered LLM API call, as it leaves the laptop. Prompt and completion text never do."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    request_uid: UUID
    machine_id: Annotated[str, Field(min_length=1, max_length=128)]
    started_at: datetime
    ended_at: datetime
    provider: Provider
    model_requested: Annotated[str, Field(max_length=256)] | None = None
    model_served: Annotated[str, Field(max_length=256)] | None = None
    endpoint: Annotated[str, Field(min_length=1, max_length=512)]
    status_code: Annotated[int, Field(ge=0, le=MAX_STATUS_CODE)] | None = None
    streamed: bool = False
    complete: bool = True
    service_tier: Annotated[str, Field(max_length=64)] | None = None
    batch: bool = False
    input_tokens: TokenCount | None = None
    output_tokens: TokenCount | None = None
    cache_read_tokens: TokenCount | None = None
    cache_write_tokens: TokenCount | None = None
    cache_write_1h_tokens: TokenCount | None = None
    reasoning_tokens: TokenCount | None = None
    cost_usd: Cost | None = None
    price_card: Annotated[str, Field(max_length=256)] | None = None
    project: Slug = "default"
    attribution_tier: AttributionTier = "default"
    prompt_hash: Annotated[str, Field(max_length=128)] | None = None
    provider_request_id: Annotated[str, Field(max_length=256)] | None = None
    latency_ms: DurationMs | None = None
    ttfb_ms: DurationMs | None = None
    # Where the provider says it served the call (Anthropic usage.inference_geo: "us", "global"): some
    # providers charge a regional multiplier.
    region: Annotated[str, Field(max_length=32)] | None = None
    # Server-side web searches the provider billed per use (Anthropic usage.server_tool_use).
    web_search_requests: Annotated[int, Field(ge=0, le=MAX_UNITS)] | None = None
    # Where the call came from (halton_meter.origin): the calling process's git repository, branch and the
    # ticket key in the branch name, and the tool that called (claude-code, codex-cli, anthropic-python...).
    repository: Annotated[str, Field(max_length=256)] | None = None
    branch: Annotated[str, Field(max_length=256)] | None = None
    ticket: Annotated[str, Field(max_length=64)] | None = None
    tool: Annotated[str, Field(max_length=64)] | None = None
    tool_version: Annotated[str, Field(max_length=64)] | None = None

    @field_validator("started_at", "ended_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("timestamp must carry a timezone (UTC)")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> RequestRow:
        if self.ended_at < self.started_at:
            raise ValueError("ended_at is before started_at")
        if self.input_tokens is not None:
            cached = sum(
                t or 0 for t in (self.cache_read_tokens, self.cache_write_tokens, self.cache_write_1h_tokens)
            )
            if cached > self.input_tokens:
                raise ValueError("cache tokens exceed input_tokens (input_tokens includes cached tokens)")
        if (
            self.reasoning_tokens is not None
            and self.output_tokens is not None
            and self.reasoning_tokens > self.output_tokens
        ):
            raise ValueError("reasoning_tokens exceed output_tokens (output_tokens includes reasoning)")
        return self


# The row's fields in wire order. Every other list of them derives from this one: the meter's SQLite columns
# (`store`), the cloud's raw.requests writer and its fast batch decoder, the test factories.
# tests/test_request_row_columns.py holds raw.requests (the warehouse migrations), the dbt staging model
# and its yml to it, and names the place that differs.
REQUEST_ROW_FIELDS: tuple[str, ...] = tuple(RequestRow.model_fields)
# raw.requests as the cloud fills it: who sent each row and in which batch (from the token and the envelope,
# never from the row), then the row; ingested_at is the table's default, the warehouse's clock.
INGESTED_REQUEST_COLUMNS: tuple[str, ...] = ("workspace_id", "device_id", "batch_id", *REQUEST_ROW_FIELDS)


class RequestBatch(BaseModel):
    """The body of ``POST /v1/requests/batch``: all rows are accepted or none are."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = SCHEMA_VERSION
    batch_id: UUID
    rows: Annotated[list[RequestRow], Field(min_length=1)]


class BatchAccepted(BaseModel):
    """The 200 answer to a batch."""

    batch_id: UUID
    accepted: int
    duplicates: int
