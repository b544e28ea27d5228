-- Each rate row of the catalogue in force with the time it stops applying: the start of the next row of the
-- same model and mode (NULL while it is the current one). A call is priced with the row in force when it
-- started; a call before a model's first row takes that first row (which starts in 1970), as the meter does.
with prices as (
    select * from {{ ref('stg_price_card__rate_rows') }}
)

select
    {{ surrogate_key(['provider', 'card_model', 'mode', 'valid_from']) }} as price_period_id,
    provider,
    card_model,
    mode,
    valid_from,
    leadInFrame(toNullable(valid_from)) over (
        partition by provider, card_model, mode
        order by valid_from
        rows between unbounded preceding and unbounded following
    ) as valid_until,
    match_priority,
    match_rules,
    priced,
    tier_aboves,
    input_mtok,
    output_mtok,
    cache_read_mtok,
    cache_write_5m_mtok,
    cache_write_1h_mtok,
    web_search_kusd,
    region_names,
    region_multipliers,
    rules,
    source,
    catalogue,
    pulled_at
from prices
