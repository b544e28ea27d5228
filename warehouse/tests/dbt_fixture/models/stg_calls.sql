{{ config(materialized='view') }}

select
    call_id,
    provider,
    ts as started_at,
    cost_usd
from {{ source('raw', 'calls') }}
