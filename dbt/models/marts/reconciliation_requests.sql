-- The requests behind a divergence: every call on a day whose reconciliation is amber or red, with what
-- the meter logged and what the current card says it costs. `repricing_differs` marks the calls priced with
-- a card that has since changed (the usual cause: a provider price change the meter had not picked up).
select
    requests.request_uid as request_uid,
    requests.workspace_id as workspace_id,
    requests.provider as provider,
    requests.day as day,
    days.status as day_status,
    days.variance_pct as day_variance_pct,
    requests.started_at as started_at,
    requests.model as model,
    requests.card_model as card_model,
    requests.project as project,
    requests.device_id as device_id,
    requests.provider_request_id as provider_request_id,
    requests.price_card as price_card,
    requests.input_tokens as input_tokens,
    requests.output_tokens as output_tokens,
    requests.cache_read_tokens as cache_read_tokens,
    requests.logged_cost_usd as logged_cost_usd,
    requests.repriced_cost_usd as repriced_cost_usd,
    requests.repricing_delta_usd as repricing_delta_usd,
    ifNull(abs(requests.repricing_delta_usd) > toDecimal64('{{ var("repricing_tolerance_usd") }}', 9), false)
        as repricing_differs,
    requests.cost_source as cost_source
from {{ ref('int_requests_priced') }} as requests
inner join (
    select workspace_id, provider, day, status, variance_pct
    from {{ ref('reconciliation_daily') }}
    where status in ('amber', 'red')
) as days
    on requests.workspace_id = days.workspace_id
    and requests.provider = days.provider
    and requests.day = days.day
