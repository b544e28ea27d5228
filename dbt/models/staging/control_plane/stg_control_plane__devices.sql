select
    workspace_id,
    device_id,
    machine_id,
    hostname,
    if(name = '', hostname, name) as device_name,
    paired_by as paired_by_user_id,
    paired_at,
    last_sync_at,
    status
from {{ source('control_plane', 'devices') }} {{ dedupe() }}
where snapshot_at >= {{ latest_snapshot_at('devices') }}
