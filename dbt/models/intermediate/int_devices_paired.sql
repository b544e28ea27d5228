-- Each paired device with the member who paired it (the developer the device's spend belongs to).
select
    devices.workspace_id as workspace_id,
    devices.device_id as device_id,
    devices.machine_id as machine_id,
    devices.hostname as hostname,
    devices.device_name as device_name,
    devices.status as device_status,
    devices.paired_at as paired_at,
    devices.paired_by_user_id as user_id,
    members.name as member_name,
    members.email as member_email,
    members.role as member_role
from {{ ref('stg_control_plane__devices') }} as devices
left join {{ ref('stg_control_plane__members') }} as members
    on devices.workspace_id = members.workspace_id
    and devices.paired_by_user_id = members.user_id
