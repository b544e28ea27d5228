"""What the checks read from the warehouse: each workload's usage over the window, and its repeated calls.

A workload is one project's calls to one card model of one provider (`card_model`: the dated names a
provider serves map to one card model, so `claude-sonnet-4-5-20250929` and an error logged under
`claude-sonnet-4-5` are one workload). The window and the loop flags come from the marts
(`model_usage_30d`, `prompt_clusters`); the per-call detail (token splits, time gaps between identical
calls, sample request ids) comes from the priced calls those marts are built from
(`staging.int_requests_priced`), filtered to the same window. Every figure is an exact count or sum, and
the sample requests are chosen by cost then request id: the same warehouse gives the same numbers.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from clickhouse_connect.driver.client import Client

from halton_pipelines.recommendations import thresholds as t
from halton_pipelines.recommendations.quoted_prices import TokenSums


@dataclass(frozen=True)
class Window:
    """The days the checks look at: start inclusive, end exclusive (dbt's as_of)."""

    start: date
    end: date

    @property
    def days(self) -> int:
        return (self.end - self.start).days


@dataclass(frozen=True)
class Sample:
    request_uid: uuid.UUID
    provider_request_id: str


# The gap to a call that does not exist (the first or last of its kind): longer than any window.
NO_NEIGHBOUR_MS = 2**62

WorkloadKey = tuple[uuid.UUID, str, str, str]  # workspace_id, project, provider, card_model


@dataclass(frozen=True)
class Workload:
    """One project's calls to one card model over the window, and the profile of its successful calls."""

    workspace_id: uuid.UUID
    project: str
    provider: str
    card_model: str
    models: tuple[str, ...]
    requests: int
    ok_requests: int
    streamed_requests: int
    cached_requests: int
    spend_usd: Decimal
    input_tokens: int
    output_tokens: int
    # Percentiles over successful calls with known usage (exact, quantileExactLow as in the marts).
    input_p50: int
    input_p90: int
    input_p99: int
    input_max: int
    output_p50: int
    output_p90: int
    below_tier: TokenSums
    above_tier: TokenSums
    above_input_p50: int
    above_input_p90: int
    above_input_max: int
    # Non-streamed, non-batch successful calls: what the batch API could take.
    batchable_below: TokenSums
    batchable_above: TokenSums
    batchable_in_bursts: int
    samples: tuple[Sample, ...] = ()
    above_samples: tuple[Sample, ...] = ()
    batchable_samples: tuple[Sample, ...] = ()

    @property
    def key(self) -> WorkloadKey:
        return (self.workspace_id, self.project, self.provider, self.card_model)

    @property
    def streaming_share(self) -> Decimal:
        return Decimal(self.streamed_requests) / Decimal(self.requests) if self.requests else Decimal(0)


@dataclass(frozen=True)
class Repeats:
    """A workload's repeated calls (same prompt_hash), sorted into duplicates, cache misses and failures."""

    workspace_id: uuid.UUID
    project: str
    provider: str
    card_model: str
    # Loop repeats (all but the first call of a loop cluster in the window) and double sends (an identical
    # call within DUPLICATE_WINDOW_SECONDS of the previous one that had not failed).
    duplicates_below: TokenSums = field(default_factory=TokenSums)
    duplicates_above: TokenSums = field(default_factory=TokenSums)
    loop_repeats: int = 0
    loop_clusters: int = 0
    double_sends: int = 0
    duplicate_spend_usd: Decimal = Decimal(0)
    duplicate_samples: tuple[Sample, ...] = ()
    # Identical calls after the duplicate window and within the cache lifetime, with no cache reads.
    cache_misses: TokenSums = field(default_factory=TokenSums)
    cache_miss_prompts: int = 0
    # The first call of each run of such calls: the one that would have written the cache.
    cache_writes: TokenSums = field(default_factory=TokenSums)
    cache_samples: tuple[Sample, ...] = ()
    # Failed calls the provider counted input tokens for, and how many of them were sent again.
    failed_below: TokenSums = field(default_factory=TokenSums)
    failed_above: TokenSums = field(default_factory=TokenSums)
    failed_retried: int = 0
    failed_statuses: tuple[tuple[int, int], ...] = ()
    failed_samples: tuple[Sample, ...] = ()

    @property
    def key(self) -> WorkloadKey:
        return (self.workspace_id, self.project, self.provider, self.card_model)


def staging_database(prefix: str) -> str:
    """dbt's staging database (`<prefix>staging`), where the intermediate models live."""
    return f"{prefix}staging"


def read_window(client: Client, marts: str) -> Window | None:
    """The window `model_usage_30d` was built over (None before it holds any row)."""
    row = client.query(
        f"SELECT min(window_start), max(window_end), count() FROM {marts}.model_usage_30d"
    ).result_rows[0]
    if not row[2]:
        return None
    return Window(row[0], row[1])


def _sums(condition: str) -> str:
    """Token sums of the calls matching `condition`, split as the card prices them."""
    return ", ".join(
        f"toUInt64({aggregate}) AS {{prefix}}_{name}"
        for name, aggregate in (
            ("requests", f"countIf({condition})"),
            ("uncached_input", f"sumIf(uncached_input_tokens, {condition})"),
            ("cache_read", f"sumIf(ifNull(cache_read_tokens, 0), {condition})"),
            ("cache_write", f"sumIf(ifNull(cache_write_tokens, 0), {condition})"),
            ("cache_write_1h", f"sumIf(ifNull(cache_write_1h_tokens, 0), {condition})"),
            ("output", f"sumIf(ifNull(output_tokens, 0), {condition})"),
        )
    )


def _token_sums(row: dict[str, Any], prefix: str) -> TokenSums:
    return TokenSums(
        requests=int(row[f"{prefix}_requests"]),
        uncached_input=int(row[f"{prefix}_uncached_input"]),
        cache_read=int(row[f"{prefix}_cache_read"]),
        cache_write=int(row[f"{prefix}_cache_write"]),
        cache_write_1h=int(row[f"{prefix}_cache_write_1h"]),
        output=int(row[f"{prefix}_output"]),
    )


def _samples(condition: str) -> str:
    """The SAMPLE_REQUESTS most expensive calls matching `condition` (ties by request id): deterministic."""
    return (
        f"groupArraySortedIf({t.SAMPLE_REQUESTS})"
        f"((-cost_usd, toString(request_uid), ifNull(provider_request_id, '')), {condition})"
    )


def _to_samples(values: list[tuple[Any, Any, str]]) -> tuple[Sample, ...]:
    return tuple(Sample(uuid.UUID(uid), pid) for _, uid, pid in values)


def _priced_calls(staging: str, window: Window) -> str:
    """The window's calls to a priced model, with the per-call flags the checks share."""
    return f"""
        SELECT
            request_uid, workspace_id, project, provider, model, card_model,
            started_at, status_code, streamed, is_batch, is_error, complete, above_tier, prompt_hash_key, provider_request_id,
            input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, cache_write_1h_tokens,
            uncached_input_tokens, cost_usd,
            not is_error and complete and input_tokens IS NOT NULL and output_tokens IS NOT NULL AS profiled,
            (is_error or not complete) AS failed
        FROM {staging}.int_requests_priced
        WHERE day >= toDate('{window.start.isoformat()}') AND day < toDate('{window.end.isoformat()}')
            AND card_model IS NOT NULL
    """


def read_workloads(client: Client, staging: str, window: Window) -> list[Workload]:
    """Every workload of every workspace over the window, with its profile and token sums."""
    batchable = "profiled and not streamed and not is_batch"
    sql = f"""
        WITH calls AS (
            SELECT
                *,
                ifNull(
                    dateDiff(
                        'millisecond',
                        lagInFrame(toNullable(started_at)) OVER (
                            PARTITION BY workspace_id, project, provider, card_model
                            ORDER BY started_at, request_uid
                            ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
                        ),
                        started_at
                    ),
                    {NO_NEIGHBOUR_MS}
                ) AS gap_ms
            FROM ({_priced_calls(staging, window)})
        )
        SELECT
            workspace_id, project, provider, card_model,
            arraySort(groupUniqArray(model)) AS models,
            count() AS requests,
            countIf(not is_error) AS ok_requests,
            countIf(streamed) AS streamed_requests,
            countIf(ifNull(cache_read_tokens, 0) > 0) AS cached_requests,
            toDecimal128(sum(cost_usd), 9) AS spend_usd,
            sum(ifNull(input_tokens, 0)) AS total_input_tokens,
            sum(ifNull(output_tokens, 0)) AS total_output_tokens,
            toUInt64(ifNull(quantileExactLowIf(0.5)(input_tokens, profiled), 0)) AS input_p50,
            toUInt64(ifNull(quantileExactLowIf(0.9)(input_tokens, profiled), 0)) AS input_p90,
            toUInt64(ifNull(quantileExactLowIf(0.99)(input_tokens, profiled), 0)) AS input_p99,
            toUInt64(ifNull(maxIf(input_tokens, profiled), 0)) AS input_max,
            toUInt64(ifNull(quantileExactLowIf(0.5)(output_tokens, profiled), 0)) AS output_p50,
            toUInt64(ifNull(quantileExactLowIf(0.9)(output_tokens, profiled), 0)) AS output_p90,
            {_sums("profiled and not above_tier").format(prefix="below")},
            {_sums("profiled and above_tier").format(prefix="above")},
            toUInt64(ifNull(quantileExactLowIf(0.5)(input_tokens, profiled and above_tier), 0)) AS above_input_p50,
            toUInt64(ifNull(quantileExactLowIf(0.9)(input_tokens, profiled and above_tier), 0)) AS above_input_p90,
            toUInt64(ifNull(maxIf(input_tokens, profiled and above_tier), 0)) AS above_input_max,
            {_sums(f"{batchable} and not above_tier").format(prefix="batch_below")},
            {_sums(f"{batchable} and above_tier").format(prefix="batch_above")},
            countIf({batchable} and gap_ms <= {t.BATCH_BURST_GAP_SECONDS * 1000}) AS batchable_in_bursts,
            {_samples("profiled")} AS samples,
            {_samples("profiled and above_tier")} AS above_samples,
            {_samples(batchable)} AS batchable_samples
        FROM calls
        GROUP BY workspace_id, project, provider, card_model
        ORDER BY workspace_id, project, provider, card_model
    """
    workloads = []
    for row in client.query(sql).named_results():
        workloads.append(
            Workload(
                workspace_id=_uuid(row["workspace_id"]),
                project=row["project"],
                provider=row["provider"],
                card_model=row["card_model"],
                models=tuple(row["models"]),
                requests=int(row["requests"]),
                ok_requests=int(row["ok_requests"]),
                streamed_requests=int(row["streamed_requests"]),
                cached_requests=int(row["cached_requests"]),
                spend_usd=Decimal(row["spend_usd"]),
                input_tokens=int(row["total_input_tokens"]),
                output_tokens=int(row["total_output_tokens"]),
                input_p50=int(row["input_p50"]),
                input_p90=int(row["input_p90"]),
                input_p99=int(row["input_p99"]),
                input_max=int(row["input_max"]),
                output_p50=int(row["output_p50"]),
                output_p90=int(row["output_p90"]),
                below_tier=_token_sums(row, "below"),
                above_tier=_token_sums(row, "above"),
                above_input_p50=int(row["above_input_p50"]),
                above_input_p90=int(row["above_input_p90"]),
                above_input_max=int(row["above_input_max"]),
                batchable_below=_token_sums(row, "batch_below"),
                batchable_above=_token_sums(row, "batch_above"),
                batchable_in_bursts=int(row["batchable_in_bursts"]),
                samples=_to_samples(row["samples"]),
                above_samples=_to_samples(row["above_samples"]),
                batchable_samples=_to_samples(row["batchable_samples"]),
            )
        )
    return workloads


def read_repeats(client: Client, staging: str, marts: str, window: Window) -> list[Repeats]:
    """Per workload, its repeated calls: loop repeats and double sends, cache misses, billed failures."""
    dup_ms = t.DUPLICATE_WINDOW_SECONDS * 1000
    ttl_ms = t.CACHE_TTL_SECONDS * 1000
    retry_ms = t.RETRY_WINDOW_SECONDS * 1000
    cacheable = (
        f"not in_loop and profiled and not above_tier and ifNull(cache_read_tokens, 0) = 0 "
        f"and input_tokens >= {t.CACHE_MIN_PREFIX_TOKENS}"
    )
    cache_miss = f"{cacheable} and not previous_failed and gap_ms > {dup_ms} and gap_ms <= {ttl_ms}"
    # The call that starts a run of cache misses: it would have written the cache the next call reads.
    cache_write = f"{cacheable} and not ({cache_miss}) and next_gap_ms > {dup_ms} and next_gap_ms <= {ttl_ms}"
    duplicate = (
        f"not failed and ((in_loop and loop_position > 1) "
        f"or (not in_loop and not previous_failed and gap_ms <= {dup_ms}))"
    )
    failed_billed = "failed and ifNull(input_tokens, 0) > 0"
    sql = f"""
        WITH calls AS (
            SELECT
                *,
                prompt_hash_key IN (
                    SELECT prompt_cluster_id FROM {marts}.prompt_clusters WHERE is_loop
                ) AS in_loop,
                row_number() OVER same_prompt AS loop_position,
                ifNull(
                    dateDiff('millisecond', lagInFrame(toNullable(started_at)) OVER same_prompt, started_at),
                    {NO_NEIGHBOUR_MS}
                ) AS gap_ms,
                ifNull(
                    dateDiff('millisecond', started_at, leadInFrame(toNullable(started_at)) OVER same_prompt),
                    {NO_NEIGHBOUR_MS}
                ) AS next_gap_ms,
                ifNull(lagInFrame(toNullable(failed)) OVER same_prompt, false) AS previous_failed
            FROM ({_priced_calls(staging, window)})
            WHERE prompt_hash_key != 0
            WINDOW same_prompt AS (
                PARTITION BY workspace_id, prompt_hash_key
                ORDER BY started_at, request_uid
                ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING
            )
        )
        SELECT
            workspace_id, project, provider, card_model,
            {_sums(f"({duplicate}) and not above_tier").format(prefix="dup_below")},
            {_sums(f"({duplicate}) and above_tier").format(prefix="dup_above")},
            countIf(in_loop and loop_position > 1 and not failed) AS loop_repeats,
            uniqExactIf(prompt_hash_key, in_loop and loop_position > 1 and not failed) AS loop_clusters,
            countIf(not in_loop and not failed and not previous_failed and gap_ms <= {dup_ms}) AS double_sends,
            toDecimal128(sumIf(cost_usd, {duplicate}), 9) AS duplicate_spend_usd,
            {_samples(duplicate)} AS duplicate_samples,
            {_sums(cache_miss).format(prefix="miss")},
            uniqExactIf(prompt_hash_key, {cache_miss}) AS cache_miss_prompts,
            {_sums(cache_write).format(prefix="write")},
            {_samples(cache_miss)} AS cache_samples,
            {_sums(f"{failed_billed} and not above_tier").format(prefix="failed_below")},
            {_sums(f"{failed_billed} and above_tier").format(prefix="failed_above")},
            countIf({failed_billed} and next_gap_ms <= {retry_ms}) AS failed_retried,
            arraySort(groupArrayIf(ifNull(status_code, 0), {failed_billed})) AS failed_status_list,
            {_samples(failed_billed)} AS failed_samples
        FROM calls
        GROUP BY workspace_id, project, provider, card_model
        ORDER BY workspace_id, project, provider, card_model
    """
    out = []
    for row in client.query(sql).named_results():
        statuses: dict[int, int] = {}
        for status in row["failed_status_list"]:
            statuses[int(status)] = statuses.get(int(status), 0) + 1
        out.append(
            Repeats(
                workspace_id=_uuid(row["workspace_id"]),
                project=row["project"],
                provider=row["provider"],
                card_model=row["card_model"],
                duplicates_below=_token_sums(row, "dup_below"),
                duplicates_above=_token_sums(row, "dup_above"),
                loop_repeats=int(row["loop_repeats"]),
                loop_clusters=int(row["loop_clusters"]),
                double_sends=int(row["double_sends"]),
                duplicate_spend_usd=Decimal(row["duplicate_spend_usd"]),
                duplicate_samples=_to_samples(row["duplicate_samples"]),
                cache_misses=_token_sums(row, "miss"),
                cache_miss_prompts=int(row["cache_miss_prompts"]),
                cache_writes=_token_sums(row, "write"),
                cache_samples=_to_samples(row["cache_samples"]),
                failed_below=_token_sums(row, "failed_below"),
                failed_above=_token_sums(row, "failed_above"),
                failed_retried=int(row["failed_retried"]),
                failed_statuses=tuple(sorted(statuses.items())),
                failed_samples=_to_samples(row["failed_samples"]),
            )
        )
    return out


def _uuid(value: Any) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
