-- Billing lines of the newest pull of each (workspace, provider, day, source); lines a later pull no longer
-- reports are gone.
with lines as (
    select
        workspace_id,
        provider,
        day,
        source,
        line_item,
        provider_project,
        model,
        amount as amount_usd,
        currency,
        pulled_at
    from {{ source('billing', 'provider_costs') }} {{ dedupe() }}
),

newest_pulls as (
    select workspace_id, provider, day, source, max(pulled_at) as pulled_at
    from lines
    group by workspace_id, provider, day, source
)

select lines.*
from lines
inner join newest_pulls using (workspace_id, provider, day, source, pulled_at)
