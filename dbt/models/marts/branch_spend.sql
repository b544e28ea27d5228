{{
    config(
        materialized='incremental',
        incremental_strategy='insert_overwrite',
        partition_by='toYYYYMMDD(day)',
        order_by='(workspace_id, day, repository, branch, ticket, tool, project, device_id)',
        engine='MergeTree()',
    )
}}
-- Spend per workspace, day, repository, branch, ticket, tool, provider, model, project and device: "what did PROJ-1234 cost,
-- across every machine". Where the meter could not see the caller's checkout or tool the column is '' (one
-- group per day), so the groups always add up to daily_spend. Rebuilt a day at a time, as daily_spend.

select
    {{ surrogate_key([
        'workspace_id', 'day', 'repository', 'branch', 'ticket', 'tool', 'tool_version', 'provider', 'model',
        'project', 'device_id'
    ]) }} as branch_spend_id,
    workspace_id,
    day,
    ifNull(r.repository, '') as repository,
    ifNull(r.branch, '') as branch,
    ifNull(r.ticket, '') as ticket,
    ifNull(r.tool, '') as tool,
    ifNull(r.tool_version, '') as tool_version,
    provider,
    model,
    project,
    device_id,
    count() as requests,
    countIf(r.is_error) as error_requests,
    sum(ifNull(r.input_tokens, 0)) as input_tokens,
    sum(ifNull(r.output_tokens, 0)) as output_tokens,
    {{ sum_money('r.cost_usd') }} as spend_usd,
    countIf(r.cost_source = 'unpriced') as unpriced_requests,
    max(r.priced_at) as priced_at
from {{ ref('int_requests_priced') }} as r
{% if is_incremental() %}
where r.day in ({{ days_rebuilt_upstream(ref('int_requests_priced')) }})
{% endif %}
group by workspace_id, day, repository, branch, ticket, tool, tool_version, provider, model, project, device_id
