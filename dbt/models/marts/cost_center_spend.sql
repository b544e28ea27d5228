-- Spend per cost center and day; projects without a cost center roll up to "Unassigned".
select
    {{ surrogate_key(['p.workspace_id', "ifNull(toString(p.cost_center_id), 'unassigned')", 'p.day']) }} as cost_center_spend_id,
    p.workspace_id as workspace_id,
    p.day as day,
    p.cost_center_id as cost_center_id,
    ifNull(any(p.cost_center_name), 'Unassigned') as cost_center_name,
    sum(p.requests) as requests,
    sum(p.input_tokens) as input_tokens,
    sum(p.output_tokens) as output_tokens,
    {{ sum_money('p.spend_usd') }} as spend_usd,
    {{ count_distinct('p.project') }} as projects
from {{ ref('project_spend') }} as p
group by p.workspace_id, p.day, p.cost_center_id
