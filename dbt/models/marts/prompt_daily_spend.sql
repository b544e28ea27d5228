{{
    config(
        materialized='incremental',
        incremental_strategy='insert_overwrite',
        partition_by='toYYYYMMDD(day)',
        order_by='(workspace_id, day, prompt_hash_key)',
        engine='MergeTree()',
    )
}}
-- Calls of repeated prompts per workspace, day, prompt and the rail's dimensions (provider, model, project,
-- device, branch, ticket, tool): what the clusters page sums for any period of whole days and any filter,
-- instead of aggregating every call of the period. Only prompts seen at least twice over all history (a prompt
-- seen once is never a cluster, whatever the view), so one-off prompts - most of them - add no rows.
-- Rebuilt a day at a time: the days the priced requests rebuilt, and the earlier days of any prompt those days
-- made a repeat (its first call, alone on its day until now, counts from now on).

with
{% if is_incremental() %}
rebuilt_days as (
    {{ days_rebuilt_upstream(ref('int_requests_priced')) }}
),

newly_repeated_days as (
    select distinct day
    from {{ ref('int_requests_priced') }}
    where prompt_hash_key in (
        select prompt_hash_key
        from {{ ref('int_requests_priced') }}
        where day in (select day from rebuilt_days)
            and prompt_hash_key != 0
            and prompt_hash_key not in (select prompt_hash_key from {{ this }})
    )
),

days_to_build as (
    select day from rebuilt_days
    union distinct
    select day from newly_repeated_days
),
{% endif %}

candidate_keys as (
    select prompt_hash_key
    from {{ ref('int_requests_priced') }}
    where prompt_hash_key != 0
    {% if is_incremental() %}
        and day in (select day from days_to_build)
    {% endif %}
),

repeated_keys as (
    -- Counted over all history: a cheap count on one 64-bit key (it hashes the workspace with the prompt hash).
    select prompt_hash_key
    from {{ ref('int_requests_priced') }}
    where prompt_hash_key in (select prompt_hash_key from candidate_keys)
    group by prompt_hash_key
    having count() >= 2
)

select
    workspace_id,
    day,
    -- Never NULL here (calls without a prompt hash have key 0, left out): the sort key cannot be Nullable.
    assumeNotNull(prompt_hash_key) as prompt_hash_key,
    prompt_hash,
    provider,
    model,
    project,
    device_id,
    branch,
    ticket,
    tool,
    count() as requests,
    sum(cost_usd) as spend_usd,
    min(started_at) as first_started_at,
    argMin(request_uid, (started_at, request_uid)) as first_request_uid,
    argMin(cost_usd, (started_at, request_uid)) as first_cost_usd,
    max(started_at) as last_started_at,
    countIf(ifNull(cache_read_tokens, 0) > 0) as cached_requests,
    max(priced_at) as priced_at
from {{ ref('int_requests_priced') }}
where prompt_hash_key in (select prompt_hash_key from repeated_keys)
{% if is_incremental() %}
    and day in (select day from days_to_build)
{% endif %}
group by workspace_id, day, prompt_hash_key, prompt_hash, provider, model, project, device_id, branch, ticket, tool
