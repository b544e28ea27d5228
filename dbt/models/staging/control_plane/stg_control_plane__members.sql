select workspace_id, user_id, email, name, role, joined_at
from {{ source('control_plane', 'members') }} {{ dedupe() }}
where snapshot_at >= {{ latest_snapshot_at('members') }}
