"""The optimisation checks: pure functions from a workload's usage and the price card to a recommendation.

Each check returns a `Recommendation` quoting a saving per month, or None when the pattern is not there or
saves less than MIN_MONTHLY_SAVING_USD. Savings are priced on the card (`CardPrice.cost` over exact token
sums), never on floats; the thresholds and confidence rules are the named constants of `thresholds`. No
check reads the clock: the same usage gives the same recommendations, id for id and digit for digit.

The checks never count the same call twice for the same money: an identical call within a minute of the
previous one is a duplicate, later within the cache lifetime a cache miss; a call after a failure is a
retry (counted with the failure, not as a duplicate); a loop's calls are duplicates, never cache misses.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal

from halton_pipelines.recommendations import thresholds as t
from halton_pipelines.recommendations.quoted_prices import CardPrice, money
from halton_pipelines.recommendations.recommendation import (
    BATCH_API,
    DUPLICATE_REQUESTS,
    FAILED_CALLS,
    LONG_CONTEXT,
    PER_DAY,
    PER_REQUEST,
    PROMPT_CACHING,
    RIGHT_SIZING,
    Baseline,
    Recommendation,
)
from halton_pipelines.recommendations.siblings import cheaper_sibling
from halton_pipelines.recommendations.window_usage import Repeats, Window, Workload, WorkloadKey

Prices = Mapping[tuple[str, str], CardPrice]

HIGH, MEDIUM, LOW = "high", "medium", "low"


def monthly(saving: Decimal, window: Window) -> Decimal:
    """A saving seen over the window as a saving per month (MONTH_DAYS days), to the nano-dollar."""
    return money(saving * t.MONTH_DAYS / window.days)


def run_checks(
    workloads: Iterable[Workload], repeats: Iterable[Repeats], prices: Prices, window: Window
) -> list[Recommendation]:
    """Every check over every workload, sorted by workspace, then biggest saving first, then id."""
    repeats_of: dict[WorkloadKey, Repeats] = {r.key: r for r in repeats}
    found: list[Recommendation] = []
    for workload in workloads:
        price = prices.get((workload.provider, workload.card_model))
        if price is None:
            continue
        repeated = repeats_of.get(workload.key)
        candidates = [
            right_sizing(workload, price, prices, window),
            batch_api(workload, price, window),
            long_context(workload, price, window),
        ]
        if repeated is not None:
            candidates += [
                prompt_caching(workload, repeated, price, window),
                duplicate_requests(workload, repeated, price, window),
                failed_calls(workload, repeated, price, window),
            ]
        found += [c for c in candidates if c is not None and c.monthly_saving_usd >= t.MIN_MONTHLY_SAVING_USD]
    return sorted(found, key=lambda r: (str(r.workspace_id), -r.monthly_saving_usd, str(r.id)))


def right_sizing(
    workload: Workload, price: CardPrice, prices: Prices, window: Window
) -> Recommendation | None:
    """A large model on short prompts with short answers and no long-context need → its cheaper sibling."""
    sibling = cheaper_sibling(workload.provider, workload.card_model)
    target = prices.get((workload.provider, sibling)) if sibling else None
    profiled = workload.below_tier.requests + workload.above_tier.requests
    if target is None or sibling is None or profiled < t.RIGHT_SIZE_MIN_REQUESTS:
        return None
    sibling_tier = target.tier_threshold_tokens
    if (
        workload.above_tier.requests
        or workload.input_p90 > t.RIGHT_SIZE_MAX_INPUT_P90
        or workload.output_p90 > t.RIGHT_SIZE_MAX_OUTPUT_P90
        or workload.input_p99 > t.RIGHT_SIZE_MAX_INPUT_P99
        or (sibling_tier is not None and workload.input_max > sibling_tier)
    ):
        return None
    now_cost, sibling_cost = price.cost(workload.below_tier), target.cost(workload.below_tier)
    saving = monthly(now_cost - sibling_cost, window)
    if profiled >= t.RIGHT_SIZE_HIGH_REQUESTS and (
        workload.input_p90 * 2 <= t.RIGHT_SIZE_MAX_INPUT_P90
        and workload.output_p90 * 2 <= t.RIGHT_SIZE_MAX_OUTPUT_P90
    ):
        confidence = HIGH
        rule = (
            f"high: at least {t.RIGHT_SIZE_HIGH_REQUESTS:,} calls and p90s at most half the thresholds "
            f"(input ≤ {t.RIGHT_SIZE_MAX_INPUT_P90 // 2:,}, output ≤ {t.RIGHT_SIZE_MAX_OUTPUT_P90 // 2:,} tokens)"
        )
    else:
        confidence = MEDIUM
        rule = (
            f"medium: p90 input ≤ {t.RIGHT_SIZE_MAX_INPUT_P90:,} and p90 output ≤ {t.RIGHT_SIZE_MAX_OUTPUT_P90:,} "
            f"tokens over at least {t.RIGHT_SIZE_MIN_REQUESTS:,} calls, but fewer than "
            f"{t.RIGHT_SIZE_HIGH_REQUESTS:,} calls or p90s above half the thresholds"
        )
    return Recommendation(
        workspace_id=workload.workspace_id,
        kind=RIGHT_SIZING,
        project=workload.project,
        provider=workload.provider,
        model=workload.card_model,
        target_model=sibling,
        title=f"Swap {workload.card_model} → {sibling}",
        explanation=(
            f"Based on {workload.requests:,} requests in the last {window.days} days. {workload.project}'s prompts "
            f"to {workload.card_model} are short (90% at most {workload.input_p90:,} tokens) with short answers "
            f"(90% at most {workload.output_p90:,} tokens) and none needs long context: {sibling} would have "
            f"cost {_usd(monthly(sibling_cost, window))} instead of {_usd(monthly(now_cost, window))} a month."
        ),
        monthly_saving_usd=saving,
        confidence=confidence,
        confidence_rule=rule,
        affected_requests=profiled,
        evidence={
            **_profile(workload, window),
            "thresholds": {
                "input_p90_max": t.RIGHT_SIZE_MAX_INPUT_P90,
                "output_p90_max": t.RIGHT_SIZE_MAX_OUTPUT_P90,
                "input_p99_max": t.RIGHT_SIZE_MAX_INPUT_P99,
                "min_requests": t.RIGHT_SIZE_MIN_REQUESTS,
            },
            "current_monthly_cost_usd": monthly(now_cost, window),
            "sibling_monthly_cost_usd": monthly(sibling_cost, window),
            "current_rates_mtok": price.rates(),
            "sibling_rates_mtok": target.rates(),
        },
        samples=workload.samples,
        scope_models=workload.models,
        baseline=Baseline.of(workload, window),
        realised_method=PER_REQUEST,
        price_card=price.card,
    )


def prompt_caching(
    workload: Workload, repeats: Repeats, price: CardPrice, window: Window
) -> Recommendation | None:
    """Identical prompts sent again within the cache lifetime with no cache reads: cache them."""
    misses, writes = repeats.cache_misses, repeats.cache_writes
    if misses.requests < t.CACHE_MIN_REPEATS:
        return None
    rates = price.rates()
    read_saving = Decimal(misses.uncached_input) * (rates["uncached_input"] - rates["cache_read"]) / 1_000_000
    write_premium = (
        Decimal(writes.uncached_input) * (rates["cache_write"] - rates["uncached_input"]) / 1_000_000
    )
    saving = monthly(read_saving - write_premium, window)
    if workload.cached_requests == 0 and misses.requests >= t.CACHE_HIGH_REPEATS:
        confidence, rule = (
            HIGH,
            f"high: no call of the workload reads a cache, {t.CACHE_HIGH_REPEATS}+ repeats",
        )
    elif workload.cached_requests == 0:
        confidence = MEDIUM
        rule = f"medium: no call of the workload reads a cache, fewer than {t.CACHE_HIGH_REPEATS} repeats"
    else:
        confidence, rule = (
            LOW,
            "low: some calls of the workload read a cache already; these repeats missed it",
        )
    return Recommendation(
        workspace_id=workload.workspace_id,
        kind=PROMPT_CACHING,
        project=workload.project,
        provider=workload.provider,
        model=workload.card_model,
        title=f"Cache the repeated prompts to {workload.card_model}",
        explanation=(
            f"Based on {workload.requests:,} requests in the last {window.days} days. {misses.requests:,} calls of "
            f"{workload.project} repeated one of {repeats.cache_miss_prompts:,} prompts within "
            f"{t.CACHE_TTL_SECONDS // 60} minutes of the same prompt and read nothing from the prompt cache: "
            f"cached, their {misses.uncached_input:,} input tokens would have been billed at the cache-read rate."
        ),
        monthly_saving_usd=saving,
        confidence=confidence,
        confidence_rule=rule,
        affected_requests=misses.requests,
        evidence={
            **_profile(workload, window),
            "repeated_prompts": repeats.cache_miss_prompts,
            "cache_miss_requests": misses.requests,
            "cache_miss_input_tokens": misses.uncached_input,
            "cache_write_requests": writes.requests,
            "cache_write_input_tokens": writes.uncached_input,
            "read_saving_usd": money(read_saving),
            "write_premium_usd": money(write_premium),
            "thresholds": {
                "cache_ttl_seconds": t.CACHE_TTL_SECONDS,
                "duplicate_window_seconds": t.DUPLICATE_WINDOW_SECONDS,
                "min_prefix_tokens": t.CACHE_MIN_PREFIX_TOKENS,
                "min_repeats": t.CACHE_MIN_REPEATS,
            },
            "rates_mtok": rates,
        },
        samples=repeats.cache_samples,
        scope_models=workload.models,
        baseline=Baseline.of(workload, window),
        realised_method=PER_REQUEST,
        price_card=price.card,
    )


def batch_api(workload: Workload, price: CardPrice, window: Window) -> Recommendation | None:
    """Non-streamed, bursty work at standard rates: the batch API bills it at the catalogue's batch rates
    (which carry the providers' published 50% where a source lists no batch price: ``rate_rows``)."""
    eligible = workload.batchable_below + workload.batchable_above
    if eligible.requests < t.BATCH_MIN_REQUESTS or workload.streaming_share > t.BATCH_MAX_STREAMING_SHARE:
        return None
    standard = price.cost(workload.batchable_below) + price.cost(workload.batchable_above, above_tier=True)
    below = price.batch_cost(workload.batchable_below)
    above = price.batch_cost(workload.batchable_above, above_tier=True)
    if below is None or above is None or standard <= 0 or below + above >= standard:
        return None
    batched = below + above
    multiplier = batched / standard
    saving = monthly(standard - batched, window)
    burst_share = Decimal(workload.batchable_in_bursts) / Decimal(eligible.requests)
    bursty = burst_share >= t.BATCH_MIN_BURST_SHARE
    if bursty and eligible.requests >= t.BATCH_HIGH_REQUESTS:
        confidence = HIGH
        rule = (
            f"high: non-interactive, bursty ({t.BATCH_MIN_BURST_SHARE:.0%}+ of the calls within "
            f"{t.BATCH_BURST_GAP_SECONDS} s of the previous one) and {t.BATCH_HIGH_REQUESTS:,}+ batchable calls"
        )
    elif bursty:
        confidence = MEDIUM
        rule = f"medium: non-interactive and bursty, fewer than {t.BATCH_HIGH_REQUESTS:,} batchable calls"
    else:
        confidence = LOW
        rule = (
            f"low: non-interactive (≤ {t.BATCH_MAX_STREAMING_SHARE:.0%} streamed) but spread out like a person's "
            "calls: check that nobody waits on them"
        )
    return Recommendation(
        workspace_id=workload.workspace_id,
        kind=BATCH_API,
        project=workload.project,
        provider=workload.provider,
        model=workload.card_model,
        title=f"Send {workload.project}'s {workload.card_model} calls through the batch API",
        explanation=(
            f"Based on {workload.requests:,} requests in the last {window.days} days. {eligible.requests:,} calls "
            f"were not streamed ({burst_share:.0%} came within {t.BATCH_BURST_GAP_SECONDS} s of the previous call): "
            f"if nobody waits on them, the batch API bills them at {multiplier:.0%} of the standard cost."
        ),
        monthly_saving_usd=saving,
        confidence=confidence,
        confidence_rule=rule,
        affected_requests=eligible.requests,
        evidence={
            **_profile(workload, window),
            "batchable_requests": eligible.requests,
            "batchable_in_bursts": workload.batchable_in_bursts,
            "burst_share": round(burst_share, 6),
            "batch_multiplier": round(multiplier, 6),
            "batch_monthly_cost_usd": monthly(batched, window),
            "standard_monthly_cost_usd": monthly(standard, window),
            "thresholds": {
                "max_streaming_share": t.BATCH_MAX_STREAMING_SHARE,
                "burst_gap_seconds": t.BATCH_BURST_GAP_SECONDS,
                "min_burst_share": t.BATCH_MIN_BURST_SHARE,
                "min_requests": t.BATCH_MIN_REQUESTS,
            },
        },
        samples=workload.batchable_samples,
        scope_models=workload.models,
        baseline=Baseline.of(workload, window),
        realised_method=PER_REQUEST,
        price_card=price.card,
    )


def duplicate_requests(
    workload: Workload, repeats: Repeats, price: CardPrice, window: Window
) -> Recommendation | None:
    """Loops and double sends: identical calls whose answers were already paid for."""
    count = repeats.loop_repeats + repeats.double_sends
    if count < t.DUPLICATE_MIN_REPEATS:
        return None
    cost = price.cost(repeats.duplicates_below) + price.cost(repeats.duplicates_above, above_tier=True)
    saving = monthly(cost, window)
    if repeats.loop_repeats:
        confidence, rule = (
            HIGH,
            "high: a loop (the clusters mart's loop_min_requests calls within its window)",
        )
        title = f"Stop the loop repeating {workload.card_model} calls in {workload.project}"
    else:
        confidence = MEDIUM
        rule = f"medium: identical calls within {t.DUPLICATE_WINDOW_SECONDS} s of each other, no loop"
        title = f"Stop sending duplicate {workload.card_model} calls in {workload.project}"
    return Recommendation(
        workspace_id=workload.workspace_id,
        kind=DUPLICATE_REQUESTS,
        project=workload.project,
        provider=workload.provider,
        model=workload.card_model,
        title=title,
        explanation=(
            f"Based on {workload.requests:,} requests in the last {window.days} days. {count:,} calls repeated "
            f"an identical call that had just succeeded ({repeats.loop_repeats:,} in {repeats.loop_clusters:,} "
            f"loop(s), {repeats.double_sends:,} sent again within {t.DUPLICATE_WINDOW_SECONDS} s): their answers "
            "were already paid for."
        ),
        monthly_saving_usd=saving,
        confidence=confidence,
        confidence_rule=rule,
        affected_requests=count,
        evidence={
            **_profile(workload, window),
            "loop_repeats": repeats.loop_repeats,
            "loop_clusters": repeats.loop_clusters,
            "double_sends": repeats.double_sends,
            "duplicate_logged_spend_usd": money(repeats.duplicate_spend_usd),
            "thresholds": {
                "duplicate_window_seconds": t.DUPLICATE_WINDOW_SECONDS,
                "min_repeats": t.DUPLICATE_MIN_REPEATS,
            },
        },
        samples=repeats.duplicate_samples,
        scope_models=workload.models,
        baseline=Baseline.of(workload, window),
        realised_method=PER_DAY,
        price_card=price.card,
    )


def long_context(workload: Workload, price: CardPrice, window: Window) -> Recommendation | None:
    """Calls above the card's tier pay the higher rates on the whole call: the premium trimming avoids."""
    above = workload.above_tier
    threshold = price.tier_threshold_tokens
    if threshold is None or above.requests < t.LONG_CONTEXT_MIN_REQUESTS:
        return None
    premium = price.cost(above, above_tier=True) - price.cost(above)
    saving = monthly(premium, window)
    profiled = workload.below_tier.requests + above.requests
    share = Decimal(above.requests) / Decimal(profiled)
    if workload.above_input_p90 <= threshold * (1 + t.LONG_CONTEXT_TRIM_MARGIN):
        confidence = HIGH
        rule = f"high: 90% of the calls above the tier are within {t.LONG_CONTEXT_TRIM_MARGIN:.0%} of it"
    elif share <= t.LONG_CONTEXT_MAX_SHARE:
        confidence = MEDIUM
        rule = f"medium: the calls above the tier are at most {t.LONG_CONTEXT_MAX_SHARE:.0%} of the workload"
    else:
        confidence, rule = (
            LOW,
            "low: many calls above the tier, far above it: the workload may need long context",
        )
    return Recommendation(
        workspace_id=workload.workspace_id,
        kind=LONG_CONTEXT,
        project=workload.project,
        provider=workload.provider,
        model=workload.card_model,
        title=f"Trim {workload.project}'s {workload.card_model} prompts under {threshold:,} tokens",
        explanation=(
            f"Based on {workload.requests:,} requests in the last {window.days} days. {above.requests:,} calls "
            f"sent more than {threshold:,} input tokens (90% at most {workload.above_input_p90:,}), so the whole "
            f"call was billed at the long-context rates: trimmed under the tier they cost {_usd(saving)} a month "
            "less."
        ),
        monthly_saving_usd=saving,
        confidence=confidence,
        confidence_rule=rule,
        affected_requests=above.requests,
        evidence={
            **_profile(workload, window),
            "tier_threshold_tokens": threshold,
            "above_tier_requests": above.requests,
            "above_tier_share": round(share, 6),
            "above_tier_input_p50": workload.above_input_p50,
            "above_tier_input_p90": workload.above_input_p90,
            "above_tier_input_max": workload.above_input_max,
            "rates_mtok": price.rates(),
            "rates_above_mtok": price.rates(above_tier=True),
            "thresholds": {
                "min_requests": t.LONG_CONTEXT_MIN_REQUESTS,
                "trim_margin": t.LONG_CONTEXT_TRIM_MARGIN,
                "max_share": t.LONG_CONTEXT_MAX_SHARE,
            },
        },
        samples=workload.above_samples,
        scope_models=workload.models,
        baseline=Baseline.of(workload, window),
        realised_method=PER_REQUEST,
        price_card=price.card,
    )


def failed_calls(
    workload: Workload, repeats: Repeats, price: CardPrice, window: Window
) -> Recommendation | None:
    """Failed calls the provider counted tokens for: paid for, and answered nothing."""
    billed = repeats.failed_below + repeats.failed_above
    if billed.requests < t.FAILED_MIN_REQUESTS:
        return None
    cost = price.cost(repeats.failed_below) + price.cost(repeats.failed_above, above_tier=True)
    saving = monthly(cost, window)
    retried_share = Decimal(repeats.failed_retried) / Decimal(billed.requests)
    if retried_share >= t.FAILED_HIGH_RETRIED_SHARE:
        confidence = HIGH
        rule = f"high: at least {t.FAILED_HIGH_RETRIED_SHARE:.0%} of the billed failures were sent again"
    else:
        confidence, rule = MEDIUM, "medium: billed failures, mostly not retried"
    statuses = ", ".join(f"{status or 'cut off'}: {n}" for status, n in repeats.failed_statuses)
    return Recommendation(
        workspace_id=workload.workspace_id,
        kind=FAILED_CALLS,
        project=workload.project,
        provider=workload.provider,
        model=workload.card_model,
        title=f"Stop paying for failed {workload.card_model} calls in {workload.project}",
        explanation=(
            f"Based on {workload.requests:,} requests in the last {window.days} days. {billed.requests:,} calls "
            f"failed after the provider counted their tokens ({statuses}); {repeats.failed_retried:,} were sent "
            f"again within {t.RETRY_WINDOW_SECONDS // 60} minutes, paying for the same work twice."
        ),
        monthly_saving_usd=saving,
        confidence=confidence,
        confidence_rule=rule,
        affected_requests=billed.requests,
        evidence={
            **_profile(workload, window),
            "billed_failures": billed.requests,
            "retried_failures": repeats.failed_retried,
            "retried_share": round(retried_share, 6),
            "failure_statuses": {str(status): n for status, n in repeats.failed_statuses},
            "failed_input_tokens": billed.uncached_input
            + billed.cache_read
            + billed.cache_write
            + billed.cache_write_1h,
            "thresholds": {
                "min_requests": t.FAILED_MIN_REQUESTS,
                "retry_window_seconds": t.RETRY_WINDOW_SECONDS,
            },
        },
        samples=repeats.failed_samples,
        scope_models=workload.models,
        baseline=Baseline.of(workload, window),
        realised_method=PER_DAY,
        price_card=price.card,
    )


def _profile(workload: Workload, window: Window) -> dict[str, object]:
    """The evidence every recommendation carries: the workload's calls and token profile over the window."""
    return {
        "window_start": window.start,
        "window_end": window.end,
        "models": list(workload.models),
        "requests": workload.requests,
        "ok_requests": workload.ok_requests,
        "streamed_requests": workload.streamed_requests,
        "cached_requests": workload.cached_requests,
        "spend_usd": money(workload.spend_usd),
        "input_tokens": workload.input_tokens,
        "output_tokens": workload.output_tokens,
        "input_tokens_p50": workload.input_p50,
        "input_tokens_p90": workload.input_p90,
        "input_tokens_p99": workload.input_p99,
        "input_tokens_max": workload.input_max,
        "output_tokens_p50": workload.output_p50,
        "output_tokens_p90": workload.output_p90,
    }


def _usd(amount: Decimal) -> str:
    return f"${amount.quantize(Decimal('0.01'), rounding='ROUND_HALF_UP'):,}"
