-- Logged against billed per workspace, provider and day, for providers whose billing API is connected
-- (pasted statements are monthly: their providers show as unbilled here and reconcile by month).
with logged as (
    select
        s.workspace_id as workspace_id,
        s.provider as provider,
        s.day as day,
        sum(s.requests) as requests,
        {{ sum_money('s.spend_usd') }} as logged_usd,
        {{ sum_money('s.repriced_usd') }} as repriced_usd,
        sum(s.unpriced_requests) as unpriced_requests,
        sum(s.input_tokens) as input_tokens,
        sum(s.output_tokens) as output_tokens
    from {{ ref('daily_spend') }} as s
    group by s.workspace_id, s.provider, s.day
),

billed as (
    select
        c.workspace_id as workspace_id,
        c.provider as provider,
        c.day as day,
        {{ sum_money('c.amount_usd') }} as billed_usd,
        countIf(c.line_item != '') as billing_lines
    from {{ ref('stg_billing__provider_costs') }} as c
    where c.currency = 'USD'
    group by c.workspace_id, c.provider, c.day
),

counted as (
    select
        u.workspace_id as workspace_id,
        u.provider as provider,
        u.day as day,
        sum(u.input_tokens) as provider_input_tokens,
        sum(u.output_tokens) as provider_output_tokens
    from {{ ref('stg_billing__provider_usage') }} as u
    group by u.workspace_id, u.provider, u.day
),

compared as (
    select
        workspace_id,
        provider,
        day,
        ifNull(logged.requests, 0) as requests,
        ifNull(logged.logged_usd, {{ zero_money() }}) as logged_usd,
        ifNull(logged.repriced_usd, {{ zero_money() }}) as repriced_usd,
        ifNull(logged.unpriced_requests, 0) as unpriced_requests,
        billed.billed_usd as billed_usd,
        ifNull(billed.billing_lines, 0) as billing_lines,
        ifNull(logged.input_tokens, 0) as logged_input_tokens,
        ifNull(logged.output_tokens, 0) as logged_output_tokens
    from logged
    full outer join billed using (workspace_id, provider, day)
)

select
    {{ surrogate_key(['compared.workspace_id', 'compared.provider', 'compared.day']) }} as reconciliation_day_id,
    compared.workspace_id as workspace_id,
    compared.provider as provider,
    compared.day as day,
    {{ month_start('compared.day') }} as period,
    compared.requests as requests,
    compared.logged_usd as logged_usd,
    compared.billed_usd as billed_usd,
    if(billed_usd is null, NULL, {{ to_money_total('logged_usd - billed_usd') }}) as variance_usd,
    {{ percent_of('variance_usd', 'billed_usd') }} as variance_pct,
    {{ variance_status('variance_usd', 'billed_usd', 'variance_pct') }} as status,
    compared.repriced_usd as repriced_usd,
    {{ to_money_total('logged_usd - repriced_usd') }} as repricing_delta_usd,
    compared.unpriced_requests as unpriced_requests,
    compared.billing_lines as billing_lines,
    compared.logged_input_tokens as logged_input_tokens,
    counted.provider_input_tokens as provider_input_tokens,
    compared.logged_output_tokens as logged_output_tokens,
    counted.provider_output_tokens as provider_output_tokens
from compared
left join counted
    on compared.workspace_id = counted.workspace_id
    and compared.provider = counted.provider
    and compared.day = counted.day
