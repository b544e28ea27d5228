select
    workspace_id,
    project_id,
    slug as project,
    name as project_name,
    archived,
    hourly_rate as hourly_rate_usd,
    cost_center_id,
    created_at
from {{ source('control_plane', 'projects') }} {{ dedupe() }}
where snapshot_at >= {{ latest_snapshot_at('projects') }}
