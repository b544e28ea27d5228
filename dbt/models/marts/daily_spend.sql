{{
    config(
        materialized='incremental',
        incremental_strategy='insert_overwrite',
        partition_by='toYYYYMMDD(day)',
        order_by='(workspace_id, day, provider, model, project, device_id)',
        engine='MergeTree()',
    )
}}
-- Spend per workspace, day, provider, model, project and device. Rebuilt a day at a time from the priced
-- requests: only the days the priced requests rebuilt since this table was last built.

select
    {{ surrogate_key(['workspace_id', 'day', 'provider', 'model', 'project', 'device_id']) }} as daily_spend_id,
    workspace_id,
    day,
    provider,
    model,
    project,
    device_id,
    count() as requests,
    countIf(r.is_error) as error_requests,
    countIf(r.streamed) as streamed_requests,
    countIf(ifNull(r.cache_read_tokens, 0) > 0) as cached_requests,
    sum(ifNull(r.input_tokens, 0)) as input_tokens,
    sum(ifNull(r.cache_read_tokens, 0)) as cache_read_tokens,
    sum(ifNull(r.cache_write_tokens, 0) + ifNull(r.cache_write_1h_tokens, 0)) as cache_write_tokens,
    sum(ifNull(r.output_tokens, 0)) as output_tokens,
    sum(ifNull(r.reasoning_tokens, 0)) as reasoning_tokens,
    {{ sum_money('r.cost_usd') }} as spend_usd,
    {{ sum_money('r.logged_cost_usd') }} as logged_usd,
    {{ sum_money('r.repriced_cost_usd') }} as repriced_usd,
    countIf(r.cost_source = 'repriced') as repriced_fallback_requests,
    countIf(r.cost_source = 'unpriced') as unpriced_requests,
    max(r.ingested_at) as last_ingested_at,
    max(r.priced_at) as priced_at
from {{ ref('int_requests_priced') }} as r
{% if is_incremental() %}
where r.day in ({{ days_rebuilt_upstream(ref('int_requests_priced')) }})
{% endif %}
group by workspace_id, day, provider, model, project, device_id
