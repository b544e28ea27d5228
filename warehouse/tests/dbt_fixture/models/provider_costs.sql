{{ config(materialized='table', order_by='provider') }}

select
    c.provider as provider,
    p.display_name as display_name,
    count() as calls,
    sum(c.cost_usd) as cost_usd
from {{ ref('stg_calls') }} as c
inner join {{ ref('providers') }} as p on p.provider = c.provider
group by c.provider, p.display_name
