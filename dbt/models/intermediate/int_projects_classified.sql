-- Each project with the cost center it rolls up to.
select
    projects.workspace_id as workspace_id,
    projects.project_id as project_id,
    projects.project as project,
    projects.project_name as project_name,
    projects.archived as archived,
    projects.hourly_rate_usd as hourly_rate_usd,
    projects.cost_center_id as cost_center_id,
    cost_centers.cost_center_name as cost_center_name
from {{ ref('stg_control_plane__projects') }} as projects
left join {{ ref('stg_control_plane__cost_centers') }} as cost_centers
    on projects.workspace_id = cost_centers.workspace_id
    and projects.cost_center_id = cost_centers.cost_center_id
