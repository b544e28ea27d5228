-- Each price period of the card closed by the next period of the same model (or by its own valid_to).
with prices as (
    select * from {{ ref('stg_price_card__model_prices') }}
),

next_periods as (
    select
        provider,
        card_model,
        valid_from,
        leadInFrame(toNullable(valid_from)) over (
            partition by provider, card_model
            order by valid_from
            rows between unbounded preceding and unbounded following
        ) as next_valid_from
    from prices
)

select
    {{ surrogate_key(['prices.provider', 'prices.card_model', 'prices.valid_from']) }} as price_period_id,
    prices.provider as provider,
    prices.card_model as card_model,
    prices.valid_from as valid_from,
    multiIf(
        next_periods.next_valid_from is null, prices.valid_to,
        prices.valid_to is null, next_periods.next_valid_from,
        least(prices.valid_to, next_periods.next_valid_from)
    ) as valid_until,
    prices.match_priority as match_priority,
    prices.match_rules as match_rules,
    prices.input_mtok as input_mtok,
    prices.cache_read_mtok as cache_read_mtok,
    prices.cache_write_mtok as cache_write_mtok,
    prices.cache_write_1h_mtok as cache_write_1h_mtok,
    prices.output_mtok as output_mtok,
    prices.tier_threshold_tokens as tier_threshold_tokens,
    prices.input_mtok_above as input_mtok_above,
    prices.cache_read_mtok_above as cache_read_mtok_above,
    prices.cache_write_mtok_above as cache_write_mtok_above,
    prices.cache_write_1h_mtok_above as cache_write_1h_mtok_above,
    prices.output_mtok_above as output_mtok_above,
    prices.requests_kusd as requests_kusd,
    prices.batch_multiplier as batch_multiplier,
    prices.card as card,
    prices.source as source,
    prices.pulled_at as pulled_at
from prices
inner join next_periods
    on prices.provider = next_periods.provider
    and prices.card_model = next_periods.card_model
    and prices.valid_from = next_periods.valid_from
