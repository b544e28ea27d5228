-- Pasted monthly statement totals in the newest control-plane snapshot.
select
    workspace_id,
    provider,
    period,
    amount as amount_usd,
    currency,
    note,
    entered_by,
    entered_at,
    snapshot_at
from {{ source('billing', 'billing_statements') }} {{ dedupe() }}
where snapshot_at >= {{ latest_snapshot_at('billing_statements') }}
