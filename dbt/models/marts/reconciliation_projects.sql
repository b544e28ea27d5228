-- The reconciliation read per project: for each of our projects, provider and month, what the meters logged
-- for the project against the billing-API lines of the provider projects (OpenAI) or workspaces (Anthropic)
-- its owners mapped to it. Like `reconciliation`, a bill is compared only with the logged spend of the days
-- the provider's billing API has lines for; logged spend without a bill (a provider not mapped to the project,
-- or days not billed yet) is `unbilled_logged_usd` and never a match.
-- Rows with project_id NULL hold, per provider and month, the billed lines of provider projects nobody
-- mapped: status `unmapped`, never compared with any project's logged spend.
with projects as (
    select workspace_id, project_id, project, project_name
    from {{ ref('stg_control_plane__projects') }}
),

mapping as (
    select workspace_id, provider, provider_project, project_id
    from {{ ref('stg_billing__provider_project_map') }}
),

-- The days each provider's billing API has lines for (the days a bill can be compared on).
billed_days as (
    select workspace_id, provider, day
    from {{ ref('reconciliation_daily') }}
    where billing_lines > 0
),

billed_months as (
    select workspace_id, provider, {{ month_start('day') }} as period, count() as days_billed
    from billed_days
    group by workspace_id, provider, period
),

logged as (
    select
        s.workspace_id as workspace_id,
        p.project_id as project_id,
        s.provider as provider,
        {{ month_start('s.day') }} as period,
        sum(s.requests) as requests,
        {{ sum_money('s.spend_usd') }} as logged_usd,
        {{ sum_money('if((s.workspace_id, s.provider, s.day) in (select workspace_id, provider, day from billed_days), s.spend_usd, NULL)') }}
            as billed_days_logged_usd
    from {{ ref('daily_spend') }} as s
    inner join projects as p on p.workspace_id = s.workspace_id and p.project = s.project
    group by s.workspace_id, p.project_id, s.provider, period
),

lines as (
    select
        c.workspace_id as workspace_id,
        c.provider as provider,
        {{ month_start('c.day') }} as period,
        c.provider_project as provider_project,
        {{ sum_money('c.amount_usd') }} as billed_usd
    from {{ ref('stg_billing__provider_costs') }} as c
    where c.currency = 'USD' and c.line_item != ''
    group by c.workspace_id, c.provider, period, c.provider_project
),

mapped_billed as (
    select
        l.workspace_id as workspace_id,
        m.project_id as project_id,
        l.provider as provider,
        l.period as period,
        {{ sum_money('l.billed_usd') }} as billed_usd
    from lines as l
    inner join mapping as m
        on m.workspace_id = l.workspace_id and m.provider = l.provider and m.provider_project = l.provider_project
    group by l.workspace_id, m.project_id, l.provider, l.period
),

pairs as (
    select workspace_id, project_id, provider, arraySort(groupArray(provider_project)) as provider_projects
    from mapping
    group by workspace_id, project_id, provider
),

per_project as (
    select
        workspace_id,
        project_id,
        provider,
        period,
        ifNull(logged.requests, 0) as requests,
        ifNull(logged.logged_usd, {{ zero_money() }}) as logged_usd,
        ifNull(logged.billed_days_logged_usd, {{ zero_money() }}) as billed_days_logged_usd,
        mapped_billed.billed_usd as mapped_billed_usd
    from logged
    full outer join mapped_billed using (workspace_id, project_id, provider, period)
),

compared as (
    select
        per_project.workspace_id as workspace_id,
        per_project.project_id as project_id,
        per_project.provider as provider,
        per_project.period as period,
        per_project.requests as requests,
        per_project.logged_usd as logged_usd,
        -- (an array is never NULL after a join: a project the provider is not mapped to gets an empty one)
        notEmpty(pairs.provider_projects) as mapped,
        pairs.provider_projects as provider_projects,
        ifNull(billed_months.days_billed, 0) as days_billed,
        -- A mapped provider with billing lines this month billed the project what its mapped lines say
        -- (nothing, when none of them had a line).
        if(
            mapped and days_billed > 0, ifNull(per_project.mapped_billed_usd, {{ zero_money() }}), NULL
        ) as billed_usd,
        if(billed_usd is null, NULL, per_project.billed_days_logged_usd) as compared_logged_usd
    from per_project
    left join pairs
        on pairs.workspace_id = per_project.workspace_id
        and pairs.project_id = per_project.project_id
        and pairs.provider = per_project.provider
    left join billed_months
        on billed_months.workspace_id = per_project.workspace_id
        and billed_months.provider = per_project.provider
        and billed_months.period = per_project.period
),

unmapped as (
    select
        l.workspace_id as workspace_id,
        l.provider as provider,
        l.period as period,
        arraySort(groupArray(l.provider_project)) as provider_projects,
        {{ sum_money('l.billed_usd') }} as billed_usd
    from lines as l
    left join mapping as m
        on m.workspace_id = l.workspace_id and m.provider = l.provider and m.provider_project = l.provider_project
    -- Lines without a provider project (xAI's, or a pull not grouped by project) cannot be mapped: they stay
    -- in the provider's own reconciliation only.
    where m.project_id is null and l.provider_project != ''
    group by l.workspace_id, l.provider, l.period
)

select
    {{ surrogate_key(['c.workspace_id', 'toString(c.project_id)', 'c.provider', 'c.period']) }} as reconciliation_project_id,
    c.workspace_id as workspace_id,
    c.project_id as project_id,
    p.project as project,
    p.project_name as project_name,
    c.provider as provider,
    c.period as period,
    formatDateTime(c.period, '%Y-%m') as period_label,
    c.mapped as mapped,
    c.provider_projects as provider_projects,
    c.requests as requests,
    c.logged_usd as logged_usd,
    {{ to_money_total('c.billed_usd') }} as billed_usd,
    c.compared_logged_usd as compared_logged_usd,
    {{ to_money_total('c.logged_usd - ifNull(c.compared_logged_usd, ' ~ zero_money() ~ ')') }} as unbilled_logged_usd,
    if(c.billed_usd is null, NULL, {{ to_money_total('c.compared_logged_usd - c.billed_usd') }}) as variance_usd,
    {{ percent_of('variance_usd', 'c.billed_usd') }} as variance_pct,
    {{ variance_status('variance_usd', 'c.billed_usd', 'variance_pct') }} as billed_status,
    if(c.billed_usd is not null and unbilled_logged_usd != 0, 'partial', billed_status) as status,
    c.days_billed as days_billed
from compared as c
left join projects as p on p.workspace_id = c.workspace_id and p.project_id = c.project_id

union all

select
    {{ surrogate_key(['u.workspace_id', "'unmapped'", 'u.provider', 'u.period']) }} as reconciliation_project_id,
    u.workspace_id as workspace_id,
    NULL as project_id,
    NULL as project,
    NULL as project_name,
    u.provider as provider,
    u.period as period,
    formatDateTime(u.period, '%Y-%m') as period_label,
    toUInt8(0) as mapped,
    u.provider_projects as provider_projects,
    0 as requests,
    NULL as logged_usd,
    {{ to_money_total('u.billed_usd') }} as billed_usd,
    NULL as compared_logged_usd,
    NULL as unbilled_logged_usd,
    NULL as variance_usd,
    NULL as variance_pct,
    'unmapped' as billed_status,
    'unmapped' as status,
    0 as days_billed
from unmapped as u
