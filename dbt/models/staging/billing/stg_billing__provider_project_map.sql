-- Provider projects mapped to ours, in the newest control-plane snapshot.
select
    workspace_id,
    provider,
    provider_project,
    project_id,
    created_at
from {{ source('billing', 'provider_project_map') }} {{ dedupe() }}
where snapshot_at >= {{ latest_snapshot_at('provider_project_map') }}
