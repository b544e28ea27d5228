"""Decoding a batch body fast: msgspec into plain structs, taken only when pydantic would take it too.

`halton_meter.protocol.RequestBatch` is the definition of a valid batch, and its errors name the row and
field of every problem. Validating a 1,000-row batch with it builds a model, a dict and a fields-set per
row and was half of the API's CPU per batch (bench/RESULTS.md, "Ingestion"). `decode_batch` reads the same
JSON with msgspec into `WireRow`s (slotted, untracked by the garbage collector) about five times faster, and
answers None whenever it is not certain that pydantic would accept the batch with the same values: the
caller then validates with `RequestBatch` as before, which accepts (its lax coercions: `"1"` for 1, a Unix
timestamp for a time, braces around a UUID) or names the problem. So the fast path may refuse more than
pydantic, never accept more; `tests/test_batch_decoding.py` checks that against pydantic on edge cases and
generated batches.

What msgspec does not check itself is checked in `_rows_hold`: RequestRow's validators (ended_at not
before started_at, cache and reasoning tokens within their totals), the project's pattern and cost_usd's
bounds. One difference is screened before decoding: msgspec rounds a time with more than six fractional
digits to the microsecond where pydantic truncates, which could move a time across a millisecond, so such
bodies go to pydantic.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Context, Decimal, InvalidOperation, localcontext
from operator import attrgetter, ge
from typing import Annotated, Literal
from uuid import UUID

import msgspec
from msgspec import Meta

from halton_meter.protocol import (
    COST_DECIMALS,
    COST_DIGITS,
    MAX_DURATION_MS,
    MAX_STATUS_CODE,
    MAX_TOKENS,
    MAX_UNITS,
    SCHEMA_VERSION,
    RequestBatch,
)

# The same constraints as RequestRow's fields, but for the project's pattern: msgspec would match it on
# every row (0.8 ms per 1,000), `_rows_hold` matches each distinct project once.
_Slug = Annotated[str, Meta(min_length=1, max_length=128)]
_SLUG = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-/]*")  # RequestRow's Slug pattern, used with fullmatch
_AwareTime = Annotated[datetime, Meta(tz=True)]
_TokenCount = Annotated[int, Meta(ge=0, le=MAX_TOKENS)]
_DurationMs = Annotated[int, Meta(ge=0, le=MAX_DURATION_MS)]
_Provider = Literal["anthropic", "openai", "gemini", "xai"]
_AttributionTier = Literal["header", "api_key", "directory", "default"]

# A time with seven or more fractional digits (see the module docstring). It may also match inside some
# other string; that only sends the batch the slower way.
_SUB_MICROSECOND = re.compile(rb":\d\d[.,]\d{7}")

_COST_LIMIT = Decimal(10 ** (COST_DIGITS - COST_DECIMALS))  # RequestRow.cost_usd's max_digits, decimal_places
_MIN_COST_EXPONENT = -COST_DECIMALS
_EXACT_SUM = Context(prec=28, traps=[InvalidOperation])  # the default's precision, whatever a caller set


class WireRow(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True, gc=False):
    """A validated RequestRow as plain slots: the same fields, order and defaults (a test compares them)."""

    request_uid: UUID
    machine_id: Annotated[str, Meta(min_length=1, max_length=128)]
    started_at: _AwareTime
    ended_at: _AwareTime
    provider: _Provider
    model_requested: Annotated[str, Meta(max_length=256)] | None = None
    model_served: Annotated[str, Meta(max_length=256)] | None = None
    endpoint: Annotated[str, Meta(min_length=1, max_length=512)]
    status_code: Annotated[int, Meta(ge=0, le=MAX_STATUS_CODE)] | None = None
    streamed: bool = False
    complete: bool = True
    service_tier: Annotated[str, Meta(max_length=64)] | None = None
    batch: bool = False
    input_tokens: _TokenCount | None = None
    output_tokens: _TokenCount | None = None
    cache_read_tokens: _TokenCount | None = None
    cache_write_tokens: _TokenCount | None = None
    cache_write_1h_tokens: _TokenCount | None = None
    reasoning_tokens: _TokenCount | None = None
    cost_usd: Decimal | None = None  # bounds checked in _rows_hold
    price_card: Annotated[str, Meta(max_length=256)] | None = None
    project: _Slug = "default"
    attribution_tier: _AttributionTier = "default"
    prompt_hash: Annotated[str, Meta(max_length=128)] | None = None
    provider_request_id: Annotated[str, Meta(max_length=256)] | None = None
    latency_ms: _DurationMs | None = None
    ttfb_ms: _DurationMs | None = None
    region: Annotated[str, Meta(max_length=32)] | None = None
    web_search_requests: Annotated[int, Meta(ge=0, le=MAX_UNITS)] | None = None
    repository: Annotated[str, Meta(max_length=256)] | None = None
    branch: Annotated[str, Meta(max_length=256)] | None = None
    ticket: Annotated[str, Meta(max_length=64)] | None = None
    tool: Annotated[str, Meta(max_length=64)] | None = None
    tool_version: Annotated[str, Meta(max_length=64)] | None = None


class WireBatch(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A validated batch: the envelope of RequestBatch with WireRow rows."""

    schema_version: Literal[1] = SCHEMA_VERSION
    batch_id: UUID
    rows: Annotated[list[WireRow], Meta(min_length=1)]


_DECODER = msgspec.json.Decoder(WireBatch)

# A reader of each WireRow field, for passes over a batch at C speed: `map(FIELD["started_at"], rows)`.
FIELD = {name: attrgetter(name) for name in WireRow.__struct_fields__}


def decode_batch(body: bytes) -> WireBatch | None:
    """The batch in `body` if it is certainly valid as RequestBatch reads it; None when unsure or invalid."""
    if _SUB_MICROSECOND.search(body):
        return None
    try:
        batch = _DECODER.decode(body)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None
    return batch if _rows_hold(batch.rows) else None


def from_model(batch: RequestBatch) -> WireBatch:
    """A batch pydantic validated, as WireRows (for bodies only pydantic's lax reading accepts)."""
    return WireBatch(
        schema_version=batch.schema_version,
        batch_id=batch.batch_id,
        rows=[WireRow(**dict(row)) for row in batch.rows],
    )


def _rows_hold(rows: list[WireRow]) -> bool:
    """RequestRow's own validators, the project pattern and cost_usd's bounds, on rows msgspec decoded
    (times are already timezone-aware: `_AwareTime`)."""
    if not all(map(ge, map(FIELD["ended_at"], rows), map(FIELD["started_at"], rows))):
        return False
    if not all(map(_SLUG.fullmatch, set(map(FIELD["project"], rows)))):
        return False
    for row in rows:
        inputs = row.input_tokens
        if inputs is not None and (
            (row.cache_read_tokens or 0) + (row.cache_write_tokens or 0) + (row.cache_write_1h_tokens or 0)
            > inputs
        ):
            return False
        reasoning, outputs = row.reasoning_tokens, row.output_tokens
        if reasoning is not None and outputs is not None and reasoning > outputs:
            return False
    return _costs_fit([cost for cost in map(FIELD["cost_usd"], rows) if cost is not None])


def _costs_fit(costs: list[Decimal]) -> bool:
    """RequestRow.cost_usd's bounds (max_digits=18, decimal_places=9: at most 9 digits before the point and
    9 after, the column's Decimal(18, 9)) as written, for a whole batch at once; pydantic may drop trailing
    zeros first, so what passes here passes there.

    One sum instead of a digit tuple per row (`as_tuple` was 6% of the API's CPU under load): an exact sum of
    Decimals has the smallest exponent among them, and this sum is exact (below 10**9 each, so at most 28
    digits for fewer than 10**9 rows); one NaN or infinity makes it non-finite or raises."""
    if not costs:
        return True
    with localcontext(_EXACT_SUM):
        try:
            total = sum(costs)
        except InvalidOperation:  # +Infinity and -Infinity, or a signalling NaN
            return False
    if not total.is_finite() or min(costs) < 0 or max(costs) >= _COST_LIMIT:
        return False
    exponent = total.as_tuple().exponent
    return isinstance(exponent, int) and exponent >= _MIN_COST_EXPONENT
