-- Every ticket's spend across every machine and branch that carried its key, with when it was first and
-- last worked on: the "Branches & tickets" view's ticket table for all time (the view filters branch_spend
-- for a period).
select
    {{ surrogate_key(['workspace_id', 'ticket']) }} as ticket_spend_id,
    workspace_id,
    ticket,
    min(day) as first_day,
    max(day) as last_day,
    sum(requests) as requests,
    {{ sum_money('spend_usd') }} as spend_usd,
    {{ count_distinct('branch') }} as branches,
    {{ count_distinct('device_id') }} as devices,
    {{ count_distinct('repository') }} as repositories
from {{ ref('branch_spend') }}
where ticket != ''
group by workspace_id, ticket
