select workspace_id, cost_center_id, name as cost_center_name, created_at
from {{ source('control_plane', 'cost_centers') }} {{ dedupe() }}
where snapshot_at >= {{ latest_snapshot_at('cost_centers') }}
