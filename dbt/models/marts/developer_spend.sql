-- Spend per paired device (a developer's machine) and day, with the member who paired it.
select
    {{ surrogate_key(['spend.workspace_id', 'spend.device_id', 'spend.day']) }} as developer_spend_id,
    spend.workspace_id as workspace_id,
    spend.day as day,
    spend.device_id as device_id,
    any(devices.machine_id) as machine_id,
    any(devices.device_name) as device_name,
    any(devices.device_status) as device_status,
    any(devices.user_id) as user_id,
    any(devices.member_name) as member_name,
    any(devices.member_email) as member_email,
    sum(spend.requests) as requests,
    sum(spend.error_requests) as error_requests,
    sum(spend.input_tokens) as input_tokens,
    sum(spend.output_tokens) as output_tokens,
    {{ sum_money('spend.spend_usd') }} as spend_usd,
    {{ count_distinct('spend.project') }} as projects,
    {{ count_distinct('spend.model') }} as models
from {{ ref('daily_spend') }} as spend
left join {{ ref('int_devices_paired') }} as devices
    on spend.workspace_id = devices.workspace_id
    and spend.device_id = devices.device_id
group by spend.workspace_id, spend.device_id, spend.day
