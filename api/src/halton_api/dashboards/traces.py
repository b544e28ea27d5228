"""A request's provenance: tokens by kind, the price card and rates it was priced with, the arithmetic line
by line, how it was attributed to its project, which device sent it, and its timings."""

from __future__ import annotations

from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from uuid import UUID

from halton_api.dashboards import priced_requests
from halton_api.dashboards.page_models import TracePublic
from halton_api.dashboards.spend import as_moment
from halton_api.dashboards.view import View
from halton_api.errors import NotFound

MILLION = Decimal(1_000_000)
NANO = Decimal("0.000000001")
# (token column, rate column, what the line is)
COST_LINES = (
    ("uncached_input_tokens", "rate_input_mtok", "input (not cached)"),
    ("cache_read_tokens", "rate_cache_read_mtok", "cache reads"),
    ("cache_write_tokens", "rate_cache_write_mtok", "cache writes (5 min)"),
    ("cache_write_1h_tokens", "rate_cache_write_1h_mtok", "cache writes (1 h)"),
    ("output_tokens", "rate_output_mtok", "output (reasoning included)"),
)


def cost_lines(row: dict) -> list[dict]:
    """The re-priced cost, one line per token kind: tokens times the rate per million times the region multiplier
    (+ the call's per-call fees: web searches)."""
    if row.get("rate_input_mtok") is None:
        return []
    multiplier = row.get("rate_multiplier") or Decimal(1)
    lines = []
    for tokens_column, rate_column, what in COST_LINES:
        tokens, rate = row.get(tokens_column) or 0, row.get(rate_column)
        if rate is None or not tokens:
            continue
        amount = (Decimal(tokens) * rate / MILLION * multiplier).quantize(NANO, ROUND_HALF_UP)
        lines.append(
            {
                "what": what,
                "tokens": int(tokens),
                "rate_per_mtok": rate,
                "multiplier": multiplier,
                "usd": amount,
            }
        )
    fee = row.get("rate_requests_kusd")
    if fee:
        lines.append({"what": "web searches", "tokens": None, "rate_per_mtok": None, "multiplier": None,
                      "usd": (fee / 1000).quantize(NANO, ROUND_HALF_UP)})  # fmt: skip
    return lines


async def build_trace(view: View, request_uid: UUID, day: date | None = None) -> TracePublic:
    workspace_id = view.ctx.workspace.id
    row = await view.reader.run(
        lambda client, m: priced_requests.one(
            client, m, workspace_id=workspace_id, request_uid=request_uid, day=day
        )
    )
    if row is None and day is not None:  # a stale or hand-edited day in the link: look everywhere
        row = await view.reader.run(
            lambda client, m: priced_requests.one(
                client, m, workspace_id=workspace_id, request_uid=request_uid, day=None
            )
        )
    if row is None:
        raise NotFound(f"no request {request_uid} in this workspace (the marts may not have it yet)")
    row = {key: as_moment(value) if isinstance(value, datetime) else value for key, value in row.items()}
    device = next((d for d in view.facts.devices if d.id == row["device_id"]), None)
    return TracePublic(
        request_uid=row["request_uid"],
        workspace=view.slug,
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        latency_ms=row["latency_ms"],
        ttfb_ms=row["ttfb_ms"],
        provider=row["provider"],
        endpoint=row["endpoint"],
        model=row["model"],
        model_requested=row["model_requested"],
        model_served=row["model_served"],
        status_code=row["status_code"],
        streamed=bool(row["streamed"]),
        complete=bool(row["complete"]),
        service_tier=row["service_tier"],
        batch=bool(row["is_batch"]),
        project=row["project"],
        attribution_tier=row["attribution_tier"],
        prompt_hash=row["prompt_hash"],
        provider_request_id=row["provider_request_id"],
        device_id=row["device_id"],
        machine_id=row["machine_id"],
        device_name=device.display_name if device else None,
        device_hostname=device.hostname if device else None,
        paired_by=device.paired_by_email if device else None,
        batch_id=row["batch_id"],
        ingested_at=row["ingested_at"],
        tokens={
            "input": row["input_tokens"],
            "input_uncached": row["uncached_input_tokens"],
            "cache_read": row["cache_read_tokens"],
            "cache_write_5m": row["cache_write_tokens"],
            "cache_write_1h": row["cache_write_1h_tokens"],
            "output": row["output_tokens"],
            "reasoning": row["reasoning_tokens"],
        },
        price_card=row["price_card"],
        card_model=row["card_model"],
        price_valid_from=row["price_valid_from"],
        above_tier=bool(row["above_tier"]),
        rates_per_mtok={
            "input": row["rate_input_mtok"],
            "cache_read": row["rate_cache_read_mtok"],
            "cache_write_5m": row["rate_cache_write_mtok"],
            "cache_write_1h": row["rate_cache_write_1h_mtok"],
            "output": row["rate_output_mtok"],
        },
        rate_multiplier=row["rate_multiplier"],
        cost_lines=cost_lines(row),
        logged_cost_usd=row["logged_cost_usd"],
        repriced_cost_usd=row["repriced_cost_usd"],
        cost_usd=row["cost_usd"],
        cost_source=row["cost_source"],
        repricing_delta_usd=row["repricing_delta_usd"],
    )
