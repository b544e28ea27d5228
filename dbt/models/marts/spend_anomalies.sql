-- Runaway spend (issue 24), one row per anomaly with its evidence, over the last 24 hours of each workspace's
-- data up to as_of. Two kinds:
--   loop:  one prompt hash sent loop_min_requests times within loop_window_seconds (as prompt_clusters
--          judges a loop), over the last 24 hours;
--   spike: a project's or a device's hourly spend far above its own baseline, the median of the same hour of
--          the same weekday in the previous anomaly_baseline_weeks weeks. Comparing a Monday 10:00 with earlier
--          Mondays 10:00 keeps busy weekdays and quiet weekends from looking unusual; weeks before the
--          workspace's first call are left out of the median (a new workspace is not compared with zeros),
--          and with no week of history there is no baseline to exceed (loops are still caught).
-- A spike needs both spend >= anomaly_spike_ratio x baseline and spend - baseline >= anomaly_min_excess_usd
-- (cents over a zero baseline are not a runaway). anomaly_key names each anomaly once (kind, subject, day), so
-- the pipelines raise and send it once however often the marts are rebuilt.
with subject_hours as (
    select workspace_id, 'project' as subject_kind, ifNull(project, '') as subject, hour,
        sum(toFloat64(spend_usd)) as spend, sum(requests) as requests,
        arraySort(groupUniqArray(toString(device_id))) as device_list
    from {{ ref('hourly_spend') }}
    where day <= {{ as_of_date() }}
    group by workspace_id, subject, hour
    union all
    select workspace_id, 'device' as subject_kind, toString(device_id) as subject, hour,
        sum(toFloat64(spend_usd)) as spend, sum(requests) as requests,
        [toString(device_id)] as device_list
    from {{ ref('hourly_spend') }}
    where day <= {{ as_of_date() }}
    group by workspace_id, subject, hour
),

workspace_span as (
    select workspace_id, min(hour) as first_hour, max(hour) as newest_hour
    from subject_hours
    group by workspace_id
),

recent as (
    select s.workspace_id as workspace_id, s.subject_kind as subject_kind, s.subject as subject, s.hour as hour,
        s.spend as spend, s.requests as requests, s.device_list as device_list, w.first_hour as first_hour
    from subject_hours as s
    inner join workspace_span as w on s.workspace_id = w.workspace_id
    where s.hour > w.newest_hour - interval 24 hour
),

past as (
    select r.workspace_id as workspace_id, r.subject_kind as subject_kind, r.subject as subject, r.hour as hour,
        arrayJoin(range(1, {{ (var('anomaly_baseline_weeks') | int) + 1 }})) as weeks_back,
        r.hour - toIntervalWeek(weeks_back) as past_hour,
        r.first_hour as first_hour
    from recent as r
),

baselines as (
    select p.workspace_id as workspace_id, p.subject_kind as subject_kind, p.subject as subject, p.hour as hour,
        arraySort(groupArray(ifNull(h.spend, 0))) as past_spends
    from past as p
    left join subject_hours as h
        on p.workspace_id = h.workspace_id and p.subject_kind = h.subject_kind and p.subject = h.subject
        and p.past_hour = h.hour
    where p.past_hour >= toStartOfHour(p.first_hour)
    group by workspace_id, subject_kind, subject, hour
),

spiking_hours as (
    select r.workspace_id as workspace_id, r.subject_kind as subject_kind, r.subject as subject, r.hour as hour,
        r.spend as spend, r.requests as requests, r.device_list as device_list,
        length(b.past_spends) as baseline_weeks,
        if(length(b.past_spends) % 2 = 1,
            b.past_spends[intDiv(length(b.past_spends), 2) + 1],
            (b.past_spends[intDiv(length(b.past_spends), 2)] + b.past_spends[intDiv(length(b.past_spends), 2) + 1]) / 2
        ) as baseline
    from recent as r
    inner join baselines as b
        on r.workspace_id = b.workspace_id and r.subject_kind = b.subject_kind and r.subject = b.subject
        and r.hour = b.hour
    where length(b.past_spends) > 0
        and r.spend >= {{ var('anomaly_spike_ratio') }} * baseline
        and r.spend - baseline >= {{ var('anomaly_min_excess_usd') }}
),

spikes as (
    select
        workspace_id,
        concat('spike:', subject_kind, ':', subject, ':', toString(toDate(hour))) as anomaly_key,
        'spike' as kind,
        subject_kind,
        subject,
        argMax(hour, spend) as peak_hour,
        min(hour) as window_start,
        max(hour) + interval 1 hour as window_end,
        argMax(requests, spend) as requests,
        max(spend) as spend_usd,
        argMax(baseline, spend) as baseline_usd,
        argMax(baseline_weeks, spend) as baseline_weeks,
        argMax(device_list, spend) as device_list,
        '' as prompt_hash,
        toUInt64(0) as requests_in_window
    from spiking_hours
    group by workspace_id, subject_kind, subject, toDate(hour)
),

recent_prompts as (
    -- Only the last 24 hours of calls (prompt_clusters reads all history and is rebuilt hourly; a loop must
    -- show within one marts build).
    select r.workspace_id as workspace_id, r.prompt_hash_key as prompt_hash_key, r.prompt_hash as prompt_hash,
        r.started_at as started_at, r.cost_usd as cost_usd, r.device_id as device_id
    from {{ ref('int_requests_priced') }} as r
    inner join workspace_span as w on r.workspace_id = w.workspace_id
    where r.prompt_hash_key != 0 and r.started_at > w.newest_hour - interval 23 hour
        and r.day <= {{ as_of_date() }}
),

repeated as (
    select prompt_hash_key
    from recent_prompts
    group by prompt_hash_key
    having count() >= {{ var('loop_min_requests') }}
),

windows as (
    select
        prompt_hash_key,
        started_at,
        count() over (
            partition by prompt_hash_key
            order by {{ epoch_ms('started_at') }}
            range between {{ loop_window_ms() }} preceding and current row
        ) as in_window
    from recent_prompts
    where prompt_hash_key in (select prompt_hash_key from repeated)
),

bursts as (
    select prompt_hash_key, max(in_window) as requests_in_window,
        argMax(started_at, (in_window, started_at)) as busiest_at
    from windows
    group by prompt_hash_key
    having requests_in_window >= {{ var('loop_min_requests') }}
),

loops as (
    select
        any(p.workspace_id) as workspace_id,
        concat('loop:', any(p.prompt_hash), ':', toString(toDate(any(b.busiest_at)))) as anomaly_key,
        'loop' as kind,
        'prompt' as subject_kind,
        any(p.prompt_hash) as subject,
        toStartOfHour(any(b.busiest_at)) as peak_hour,
        min(p.started_at) as window_start,
        max(p.started_at) as window_end,
        count() as requests,
        sum(toFloat64(ifNull(p.cost_usd, 0))) as spend_usd,
        toFloat64(0) as baseline_usd,
        toUInt64(0) as baseline_weeks,
        arraySort(groupUniqArray(toString(p.device_id))) as device_list,
        any(p.prompt_hash) as prompt_hash,
        any(b.requests_in_window) as requests_in_window
    from recent_prompts as p
    inner join bursts as b on p.prompt_hash_key = b.prompt_hash_key
    group by p.prompt_hash_key
)

select
    workspace_id, anomaly_key, kind, subject_kind, subject, peak_hour,
    toDateTime64(window_start, 3, 'UTC') as window_start, toDateTime64(window_end, 3, 'UTC') as window_end,
    toUInt64(requests) as requests, round(spend_usd, 6) as spend_usd, round(baseline_usd, 6) as baseline_usd,
    toUInt64(baseline_weeks) as baseline_weeks, device_list, prompt_hash, toUInt64(requests_in_window) as requests_in_window
from spikes
union all
select
    workspace_id, anomaly_key, kind, subject_kind, subject, peak_hour,
    toDateTime64(window_start, 3, 'UTC') as window_start, toDateTime64(window_end, 3, 'UTC') as window_end,
    toUInt64(requests) as requests, round(spend_usd, 6) as spend_usd, round(baseline_usd, 6) as baseline_usd,
    toUInt64(baseline_weeks) as baseline_weeks, device_list, prompt_hash, toUInt64(requests_in_window) as requests_in_window
from loops
