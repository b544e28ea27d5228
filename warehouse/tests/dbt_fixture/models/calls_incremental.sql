{{ config(materialized='incremental', incremental_strategy='append', order_by='call_id') }}

-- loaded_by records which dbt invocation appended each row, so a test can see what a run added.
select call_id, provider, started_at, cost_usd, '{{ invocation_id }}' as loaded_by
from {{ ref('stg_calls') }}
{% if is_incremental() %}
where call_id > (select max(call_id) from {{ this }})
{% endif %}
