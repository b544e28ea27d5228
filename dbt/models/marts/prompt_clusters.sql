-- Requests grouped by request shape (prompt_hash), for prompts seen more than once: how often, what they
-- cost, when, and whether they look like a loop (the same prompt loop_min_requests times or more within
-- loop_window_seconds) rather than plain duplicates (caching opportunities).
with repeated_keys as (
    -- Most prompts are seen once: find the repeated ones with a cheap count on one 64-bit key (it hashes the
    -- workspace with the prompt hash), then aggregate only those.
    select r.prompt_hash_key as prompt_hash_key
    from {{ ref('int_requests_priced') }} as r
    where r.prompt_hash_key != 0
    group by r.prompt_hash_key
    having count() >= 2
),

requests as (
    select workspace_id, prompt_hash_key, prompt_hash, started_at, cost_usd, device_id, project, model
    from {{ ref('int_requests_priced') }}
    where prompt_hash_key in (select prompt_hash_key from repeated_keys)
),

clusters as (
    select
        prompt_hash_key,
        any(workspace_id) as workspace_id,
        any(prompt_hash) as prompt_hash,
        count() as requests,
        {{ sum_money('cost_usd') }} as spend_usd,
        toDecimal64(argMin(cost_usd, (started_at, cost_usd)), 9) as first_request_usd,
        min(started_at) as first_seen_at,
        max(started_at) as last_seen_at,
        {{ count_distinct('device_id') }} as devices,
        {{ count_distinct('project') }} as projects,
        {{ sorted_distinct('project') }} as project_list,
        {{ sorted_distinct('model') }} as model_list
    from requests
    group by prompt_hash_key
),

bursts as (
    select
        prompt_hash_key,
        max(in_window) as max_requests_in_window,
        argMax(started_at, (in_window, started_at)) as busiest_window_end_at
    from (
        select
            prompt_hash_key,
            started_at,
            count() over (
                partition by prompt_hash_key
                order by {{ epoch_ms('started_at') }}
                range between {{ loop_window_ms() }} preceding and current row
            ) as in_window
        from requests
        where prompt_hash_key in (
            select prompt_hash_key from clusters where requests >= {{ var('loop_min_requests') }}
        )
    )
    group by prompt_hash_key
)

select
    clusters.prompt_hash_key as prompt_cluster_id,
    clusters.workspace_id as workspace_id,
    clusters.prompt_hash as prompt_hash,
    clusters.requests as requests,
    clusters.spend_usd as spend_usd,
    {{ to_money_total('clusters.spend_usd - clusters.first_request_usd') }} as repeat_spend_usd,
    clusters.first_seen_at as first_seen_at,
    clusters.last_seen_at as last_seen_at,
    clusters.devices as devices,
    clusters.projects as projects,
    clusters.project_list as project_list,
    clusters.model_list as model_list,
    ifNull(bursts.max_requests_in_window, toUInt64(1)) as max_requests_in_window,
    bursts.busiest_window_end_at as busiest_window_end_at,
    ifNull(bursts.max_requests_in_window, 1) >= {{ var('loop_min_requests') }} as is_loop,
    if(is_loop, 'loop', 'duplicate') as cluster_kind
from clusters
left join bursts
    on clusters.prompt_hash_key = bursts.prompt_hash_key
