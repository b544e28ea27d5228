-- The rate rows of the catalogue in force: the one written last. Older catalogues' rows stay in raw (every
-- version is kept) but price nothing here, so a model a new catalogue drops stops pricing.
with rows as (
    select * from {{ source('price_card', 'rate_rows') }} {{ dedupe() }}
)

select
    provider,
    model as card_model,
    mode,
    toDateTime64(valid_from, 3, 'UTC') as valid_from,
    match_priority,
    match_rules,
    priced,
    tier_aboves,
    input as input_mtok,
    output as output_mtok,
    cache_read as cache_read_mtok,
    cache_write_5m as cache_write_5m_mtok,
    cache_write_1h as cache_write_1h_mtok,
    web_search_per_1k as web_search_kusd,
    region_names,
    region_multipliers,
    rules,
    source,
    catalogue,
    pulled_at
from rows
where catalogue = (select argMax(catalogue, pulled_at) from rows)
