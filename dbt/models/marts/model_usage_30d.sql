-- How each project used each model over the 30 days before as_of: the input to the recommendations
-- (request count, token percentiles, streaming and cache shares, spend).
with recent as (
    select *
    from {{ ref('int_requests_priced') }}
    where day >= {{ as_of_date() }} - 30 and day < {{ as_of_date() }}
)

select
    {{ surrogate_key(['workspace_id', 'project', 'provider', 'model']) }} as model_usage_id,
    workspace_id,
    project,
    provider,
    model,
    {{ as_of_date() }} - 30 as window_start,
    {{ as_of_date() }} as window_end,
    count() as requests,
    countIf(not r.is_error) as ok_requests,
    countIf(r.is_error) as error_requests,
    countIf(r.streamed) as streamed_requests,
    {{ share_of('countIf(r.streamed)', 'count()') }} as streaming_share,
    sum(ifNull(r.input_tokens, 0)) as input_tokens,
    sum(ifNull(r.cache_read_tokens, 0)) as cache_read_tokens,
    sum(ifNull(r.output_tokens, 0)) as output_tokens,
    sum(ifNull(r.reasoning_tokens, 0)) as reasoning_tokens,
    {{ share_of('sum(ifNull(r.cache_read_tokens, 0))', 'sum(ifNull(r.input_tokens, 0))') }} as cache_share,
    {{ share_of('countIf(ifNull(r.cache_read_tokens, 0) > 0)', 'count()') }} as cached_request_share,
    toUInt64(ifNull({{ exact_quantile(0.5, 'r.input_tokens') }}, 0)) as input_tokens_p50,
    toUInt64(ifNull({{ exact_quantile(0.9, 'r.input_tokens') }}, 0)) as input_tokens_p90,
    toUInt64(ifNull({{ exact_quantile(0.99, 'r.input_tokens') }}, 0)) as input_tokens_p99,
    toUInt64(ifNull(max(r.input_tokens), 0)) as input_tokens_max,
    toUInt64(ifNull({{ exact_quantile(0.5, 'r.output_tokens') }}, 0)) as output_tokens_p50,
    toUInt64(ifNull({{ exact_quantile(0.9, 'r.output_tokens') }}, 0)) as output_tokens_p90,
    toUInt64(ifNull({{ exact_quantile(0.99, 'r.output_tokens') }}, 0)) as output_tokens_p99,
    {{ sum_money('r.cost_usd') }} as spend_usd,
    toDecimal64(round(divideDecimal(toDecimal128(sum(r.cost_usd), 9), toDecimal128(count(), 0), 12), 9), 9) as spend_per_request_usd,
    min(r.started_at) as first_seen_at,
    max(r.started_at) as last_seen_at
from recent as r
group by workspace_id, project, provider, model
