-- Spend per project and day, with the project's name, cost center and rate from the control plane.
-- Projects the meters tagged but nobody registered yet keep their slug as name.
select
    {{ surrogate_key(['spend.workspace_id', 'spend.project', 'spend.day']) }} as project_spend_id,
    spend.workspace_id as workspace_id,
    spend.day as day,
    spend.project as project,
    any(projects.project_id) as project_id,
    ifNull(any(projects.project_name), spend.project) as project_name,
    any(projects.cost_center_id) as cost_center_id,
    any(projects.cost_center_name) as cost_center_name,
    ifNull(any(projects.archived), false) as archived,
    any(projects.hourly_rate_usd) as hourly_rate_usd,
    sum(spend.requests) as requests,
    sum(spend.error_requests) as error_requests,
    sum(spend.streamed_requests) as streamed_requests,
    sum(spend.input_tokens) as input_tokens,
    sum(spend.output_tokens) as output_tokens,
    {{ sum_money('spend.spend_usd') }} as spend_usd,
    {{ count_distinct('spend.device_id') }} as devices,
    {{ count_distinct('spend.model') }} as models
from {{ ref('daily_spend') }} as spend
left join {{ ref('int_projects_classified') }} as projects
    on spend.workspace_id = projects.workspace_id
    and spend.project = projects.project
group by spend.workspace_id, spend.day, spend.project
