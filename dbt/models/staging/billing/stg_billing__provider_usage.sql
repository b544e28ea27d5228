-- Provider token counts of the newest pull of each (workspace, provider, day, source).
with lines as (
    select
        workspace_id,
        provider,
        day,
        source,
        model,
        provider_project,
        input_tokens,
        cached_input_tokens,
        cache_write_tokens,
        output_tokens,
        requests,
        pulled_at
    from {{ source('billing', 'provider_usage') }} {{ dedupe() }}
),

newest_pulls as (
    select workspace_id, provider, day, source, max(pulled_at) as pulled_at
    from lines
    group by workspace_id, provider, day, source
)

select lines.*
from lines
inner join newest_pulls using (workspace_id, provider, day, source, pulled_at)
