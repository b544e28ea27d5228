select
    workspace_id,
    budget_id,
    project_id,
    cost_center_id,
    monthly_amount as monthly_budget_usd,
    currency,
    updated_at
from {{ source('control_plane', 'budgets') }} {{ dedupe() }}
where snapshot_at >= {{ latest_snapshot_at('budgets') }}
