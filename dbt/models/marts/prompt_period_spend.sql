{{
    config(
        materialized='table',
        order_by='(workspace_id, first_day, last_day, prompt_hash_key)',
        engine='MergeTree()',
    )
}}
-- Repeated prompts summed over each of the dashboard's standard periods of whole days ending on as_of (the last
-- 7 and 30 days, this month to date) and over last month: one row per workspace, period and prompt, with what
-- the clusters page shows (calls, spend, the first call's cost, first and last call, devices, sorted projects
-- and models, cached calls). The unfiltered clusters view of such a period reads this instead of summing
-- prompt_daily_spend's rows of every day and rail dimension (about a million for 30 days at 100M calls);
-- filtered views and other periods still sum prompt_daily_spend. Same figures: both come from the same rows.

with
periods as (
    -- Distinct: on the 7th of a month the last 7 days are this month to date.
    select distinct first_day, last_day
    from (
        select {{ as_of_date() }} - 6 as first_day, {{ as_of_date() }} as last_day
        union all
        select {{ as_of_date() }} - 29, {{ as_of_date() }}
        union all
        select {{ month_start(as_of_date()) }}, {{ as_of_date() }}
        union all
        select {{ month_start(month_start(as_of_date()) ~ ' - 1') }}, {{ month_start(as_of_date()) }} - 1
    )
)

select
    d.workspace_id as workspace_id,
    p.first_day as first_day,
    p.last_day as last_day,
    d.prompt_hash_key as prompt_hash_key,
    d.prompt_hash as prompt_hash,
    sum(d.requests) as requests,
    sum(d.spend_usd) as spend_usd,
    -- The period's first call: the earliest (start, uid) of its days' first calls, as the page computes it.
    argMin(d.first_cost_usd, (d.first_started_at, d.first_request_uid)) as first_cost_usd,
    min(d.first_started_at) as first_started_at,
    max(d.last_started_at) as last_started_at,
    uniqExact(d.device_id) as devices,
    arraySort(groupUniqArray(d.project)) as projects,
    arraySort(groupUniqArray(d.model)) as models,
    sum(d.cached_requests) as cached_requests
from {{ ref('prompt_daily_spend') }} as d
cross join periods as p
where d.day >= (select min(first_day) from periods)
    and d.day between p.first_day and p.last_day
group by d.workspace_id, p.first_day, p.last_day, d.prompt_hash_key, d.prompt_hash
