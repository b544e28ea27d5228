{{
    config(
        materialized='incremental',
        incremental_strategy='insert_overwrite',
        partition_by='toYYYYMMDD(day)',
        order_by='(workspace_id, hour, provider, model, project, device_id)',
        engine='MergeTree()',
    )
}}
-- daily_spend at the grain of an hour: what the dashboards' "last 24 hours" range reads, so its numbers
-- cover exactly the last 24 hours instead of two calendar days. Rebuilt like daily_spend, a day at a time.

select
    {{ surrogate_key(['workspace_id', 'hour', 'provider', 'model', 'project', 'device_id']) }} as hourly_spend_id,
    workspace_id,
    toStartOfHour(r.started_at) as hour,
    day,
    provider,
    model,
    project,
    device_id,
    count() as requests,
    countIf(r.is_error) as error_requests,
    sum(ifNull(r.input_tokens, 0)) as input_tokens,
    sum(ifNull(r.output_tokens, 0)) as output_tokens,
    {{ sum_money('r.cost_usd') }} as spend_usd,
    max(r.priced_at) as priced_at
from {{ ref('int_requests_priced') }} as r
{% if is_incremental() %}
where r.day in ({{ days_rebuilt_upstream(ref('int_requests_priced')) }})
{% endif %}
group by workspace_id, hour, day, provider, model, project, device_id
