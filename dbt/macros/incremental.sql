{#- Incremental models recompute whole days and replace them (insert_overwrite on day partitions), so a
    late row, a re-sent batch or a price change can never double count: a day is always rebuilt from the
    deduplicated rows. These macros say which days need rebuilding. -#}

{#- Days with request rows that arrived since this model last saw one (with a look-back for batches
    committed out of order). Over an empty model: every day. -#}
{% macro days_with_new_arrivals() -%}
    select distinct day
    from {{ ref('stg_meter__request_arrivals') }}
    where ingested_at > (select max(ingested_at) from {{ this }}) - toIntervalMinute({{ var('arrival_lookback_minutes') }})
{%- endmacro %}

{#- True when the catalogue's rate rows changed after this model priced its rows: every day is re-priced. -#}
{% macro price_card_changed() -%}
    (select max(pulled_at) from {{ ref('stg_price_card__rate_rows') }}) > (select max(prices_pulled_at) from {{ this }})
{%- endmacro %}

{#- Days the upstream model rebuilt (its rows' `priced_at`) since this model was last built. -#}
{% macro days_rebuilt_upstream(upstream) -%}
    select distinct day
    from {{ upstream }}
    where priced_at > (select max(priced_at) from {{ this }})
{%- endmacro %}
