-- The trust view: per workspace, provider and month, what the meters logged against what the provider
-- billed (its billing API where connected, else the pasted statement), the variance and its colour.
-- The variance compares like with like: a billing API's lines against what was logged on the days they
-- cover, a monthly statement against the whole month. Logged spend left without a bill (days the API has no
-- lines for yet) is `unbilled_logged_usd`, and makes the month `partial`, never a match.
with days as (
    select * from {{ ref('reconciliation_daily') }}
),

by_month as (
    select
        d.workspace_id as workspace_id,
        d.provider as provider,
        d.period as period,
        sum(d.requests) as requests,
        {{ sum_money('d.logged_usd') }} as logged_usd,
        {{ sum_money('if(d.billing_lines > 0, d.logged_usd, NULL)') }} as api_days_logged_usd,
        {{ sum_money('d.repriced_usd') }} as repriced_usd,
        sum(d.unpriced_requests) as unpriced_requests,
        countIf(d.requests > 0) as days_logged,
        countIf(d.billing_lines > 0) as days_billed,
        if(countIf(d.billing_lines > 0) = 0, NULL, {{ sum_money('d.billed_usd') }}) as api_billed_usd,
        countIf(d.status in ('amber', 'red')) as divergent_days
    from days as d
    group by d.workspace_id, d.provider, d.period
),

statements as (
    select workspace_id, provider, period, argMax(amount_usd, entered_at) as statement_usd
    from {{ ref('stg_billing__billing_statements') }}
    where currency = 'USD'
    group by workspace_id, provider, period
),

compared as (
    select
        workspace_id,
        provider,
        period,
        ifNull(by_month.requests, 0) as requests,
        ifNull(by_month.logged_usd, {{ zero_money() }}) as logged_usd,
        ifNull(by_month.api_days_logged_usd, {{ zero_money() }}) as api_days_logged_usd,
        ifNull(by_month.repriced_usd, {{ zero_money() }}) as repriced_usd,
        ifNull(by_month.unpriced_requests, 0) as unpriced_requests,
        ifNull(by_month.days_logged, 0) as days_logged,
        ifNull(by_month.days_billed, 0) as days_billed,
        ifNull(by_month.divergent_days, 0) as divergent_days,
        by_month.api_billed_usd as api_billed_usd,
        statements.statement_usd as statement_usd
    from by_month
    full outer join statements using (workspace_id, provider, period)
)

select
    {{ surrogate_key(['workspace_id', 'provider', 'period']) }} as reconciliation_id,
    workspace_id,
    provider,
    period,
    formatDateTime(period, '%Y-%m') as period_label,
    requests,
    logged_usd,
    {{ to_money_total('coalesce(api_billed_usd, statement_usd)') }} as billed_usd,
    multiIf(api_billed_usd is not null, 'billing_api', statement_usd is not null, 'statement', 'none') as billed_source,
    multiIf(
        api_billed_usd is not null, api_days_logged_usd, statement_usd is not null, logged_usd, NULL
    ) as compared_logged_usd,
    {{ to_money_total('logged_usd - ifNull(compared_logged_usd, ' ~ zero_money() ~ ')') }} as unbilled_logged_usd,
    if(billed_usd is null, NULL, {{ to_money_total('compared_logged_usd - billed_usd') }}) as variance_usd,
    {{ percent_of('variance_usd', 'billed_usd') }} as variance_pct,
    {{ variance_status('variance_usd', 'billed_usd', 'variance_pct') }} as billed_status,
    if(billed_usd is not null and unbilled_logged_usd != 0, 'partial', billed_status) as status,
    repriced_usd,
    {{ to_money_total('logged_usd - repriced_usd') }} as repricing_delta_usd,
    unpriced_requests,
    days_logged,
    days_billed,
    divergent_days,
    statement_usd
from compared
