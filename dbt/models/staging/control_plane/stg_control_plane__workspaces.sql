select workspace_id, slug, name, created_at
from {{ source('control_plane', 'workspaces') }} {{ dedupe() }}
where snapshot_at >= {{ latest_snapshot_at('workspaces') }}
