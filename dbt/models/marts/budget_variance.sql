-- Each budget (the workspace's, a project's or a cost center's) against the spend of every month up to as_of:
-- month-to-date spend, variance, and the days of the month elapsed. A cost center's spend is its projects'
-- spend, by the projects' cost center in the newest snapshot (as the dashboards group them).
-- No month-end projection here: where a month is heading is one rule, halton_warehouse.budget_forecast (the run
-- rate and the shape of earlier months), which the budget alerts and the dashboards' budget card both apply;
-- a run-rate copy here would call "at risk" what they call under, and the other way round.
with budgets as (
    select
        budgets.workspace_id as workspace_id,
        budgets.budget_id as budget_id,
        budgets.project_id as project_id,
        projects.project as project,
        budgets.cost_center_id as cost_center_id,
        centers.cost_center_name as cost_center_name,
        multiIf(
            budgets.project_id is not null, 'project',
            budgets.cost_center_id is not null, 'cost_center',
            'workspace'
        ) as scope,
        budgets.monthly_budget_usd as budget_usd
    from {{ ref('stg_control_plane__budgets') }} as budgets
    left join {{ ref('stg_control_plane__projects') }} as projects
        on budgets.workspace_id = projects.workspace_id
        and budgets.project_id = projects.project_id
    left join {{ ref('stg_control_plane__cost_centers') }} as centers
        on budgets.workspace_id = centers.workspace_id
        and budgets.cost_center_id = centers.cost_center_id
    where budgets.currency = 'USD'
),

spend as (
    select
        d.workspace_id as workspace_id,
        d.project as project,
        {{ month_start('d.day') }} as period,
        {{ sum_money('d.spend_usd') }} as spend_usd
    from {{ ref('daily_spend') }} as d
    where d.day <= {{ as_of_date() }}
    group by d.workspace_id, d.project, period
),

cost_center_totals as (
    select
        s.workspace_id as workspace_id,
        assumeNotNull(p.cost_center_id) as cost_center_id,
        s.period as period,
        {{ sum_money('s.spend_usd') }} as spend_usd
    from spend as s
    inner join {{ ref('stg_control_plane__projects') }} as p
        on s.workspace_id = p.workspace_id
        and s.project = p.project
    where p.cost_center_id is not null
    group by s.workspace_id, cost_center_id, s.period
),

periods as (
    select distinct workspace_id, period from spend
    union distinct
    select distinct workspace_id, {{ month_start(as_of_date()) }} as period from budgets
),

budget_spend as (
    select
        budgets.workspace_id as workspace_id,
        budgets.budget_id as budget_id,
        budgets.project_id as project_id,
        budgets.project as project,
        budgets.cost_center_id as cost_center_id,
        budgets.cost_center_name as cost_center_name,
        budgets.scope as scope,
        budgets.budget_usd as budget_usd,
        periods.period as period
    from budgets
    inner join periods on budgets.workspace_id = periods.workspace_id
),

measured as (
    select
        budget_spend.workspace_id as workspace_id,
        budget_spend.budget_id as budget_id,
        budget_spend.project_id as project_id,
        budget_spend.project as project,
        budget_spend.cost_center_id as cost_center_id,
        budget_spend.cost_center_name as cost_center_name,
        budget_spend.scope as scope,
        budget_spend.budget_usd as budget_usd,
        budget_spend.period as period,
        {{ to_money_total("ifNull(
            multiIf(
                budget_spend.scope = 'workspace', workspace_totals.spend_usd,
                budget_spend.scope = 'cost_center', cost_center_totals.spend_usd,
                project_totals.spend_usd
            ),
            " ~ zero_money() ~ "
        )") }} as spend_usd
    from budget_spend
    left join (
        select s.workspace_id as workspace_id, s.period as period, {{ sum_money('s.spend_usd') }} as spend_usd
        from spend as s
        group by s.workspace_id, s.period
    ) as workspace_totals
        on budget_spend.workspace_id = workspace_totals.workspace_id
        and budget_spend.period = workspace_totals.period
    left join spend as project_totals
        on budget_spend.workspace_id = project_totals.workspace_id
        and budget_spend.period = project_totals.period
        and budget_spend.project = project_totals.project
    left join cost_center_totals
        on budget_spend.workspace_id = cost_center_totals.workspace_id
        and budget_spend.period = cost_center_totals.period
        and budget_spend.cost_center_id = cost_center_totals.cost_center_id
)

select
    {{ surrogate_key(['budget_id', 'period']) }} as budget_variance_id,
    workspace_id,
    budget_id,
    scope,
    project_id,
    project,
    cost_center_id,
    cost_center_name,
    period,
    formatDateTime(period, '%Y-%m') as period_label,
    budget_usd,
    spend_usd,
    {{ to_money_total('spend_usd - budget_usd') }} as variance_usd,
    {{ percent_of('variance_usd', 'budget_usd') }} as variance_pct,
    toUInt8({{ days_in_month('period') }}) as days_in_period,
    toUInt8(if(period = {{ month_start(as_of_date()) }}, toDayOfMonth({{ as_of_date() }}), days_in_period)) as days_elapsed,
    if(spend_usd > budget_usd, 'over', 'under') as status
from measured
