{{
    config(
        materialized='incremental',
        incremental_strategy='insert_overwrite',
        partition_by='toYYYYMMDD(day)',
        order_by='(workspace_id, day, provider, request_uid)',
        engine='MergeTree()',
    )
}}
-- depends_on: {{ ref('stg_meter__request_arrivals') }}
-- Every call with the cost the meter logged and its cost re-priced with the current card (the price in force
-- when the call started). Rebuilt a day at a time: days with new arrivals, or every day when the card changed.

with requests as (
    select *
    from {{ ref('stg_meter__requests') }}
    {% if is_incremental() %}
    where day in ({{ days_with_new_arrivals() }}) or {{ price_card_changed() }}
    {% endif %}
),

prices as (
    select * from {{ ref('int_model_prices_windowed') }}
),

card_models as (
    -- Which card model prices each model name: the first match in the card's order, as genai-prices does.
    select
        names.provider as provider,
        names.model_key as model_key,
        argMin(rules.card_model, rules.match_priority) as card_model
    from (select distinct provider, lower(model) as model_key from requests) as names
    inner join (select distinct provider, card_model, match_priority, match_rules from prices) as rules
        on names.provider = rules.provider
    where {{ matches_any_rule('names.model_key', 'rules.match_rules') }}
    group by names.provider, names.model_key
),

matched as (
    select
        requests.*,
        ifNull(card_models.card_model, '') as card_model
    from requests
    left join card_models
        on requests.provider = card_models.provider
        and lower(requests.model) = card_models.model_key
),

with_prices as (
    select
        matched.*,
        prices.valid_from as price_valid_from,
        prices.valid_until as price_valid_until,
        prices.input_mtok as p_input,
        prices.cache_read_mtok as p_cache_read,
        prices.cache_write_mtok as p_cache_write,
        prices.cache_write_1h_mtok as p_cache_write_1h,
        prices.output_mtok as p_output,
        prices.tier_threshold_tokens as tier_threshold_tokens,
        prices.input_mtok_above as p_input_above,
        prices.cache_read_mtok_above as p_cache_read_above,
        prices.cache_write_mtok_above as p_cache_write_above,
        prices.cache_write_1h_mtok_above as p_cache_write_1h_above,
        prices.output_mtok_above as p_output_above,
        prices.requests_kusd as requests_kusd,
        prices.batch_multiplier as batch_multiplier
    from matched
    asof left join prices
        on matched.provider = prices.provider
        and matched.card_model = prices.card_model
        and matched.started_at >= prices.valid_from
),

rated as (
    select
        *,
        price_valid_from is not null
            and (price_valid_until is null or started_at < price_valid_until) as has_price,
        has_price and tier_threshold_tokens is not null and ifNull(input_tokens, 0) > tier_threshold_tokens as above_tier,
        greatest(
            toInt64(ifNull(input_tokens, 0)) - toInt64(ifNull(cache_read_tokens, 0))
            - toInt64(ifNull(cache_write_tokens, 0)) - toInt64(ifNull(cache_write_1h_tokens, 0)),
            0
        ) as uncached_input_tokens,
        if(above_tier, ifNull(p_input_above, p_input), p_input) as rate_input,
        if(above_tier, coalesce(p_cache_read_above, p_input_above, p_input), coalesce(p_cache_read, p_input)) as rate_cache_read,
        if(above_tier, coalesce(p_cache_write_above, p_input_above, p_input), coalesce(p_cache_write, p_input)) as rate_cache_write,
        if(
            above_tier,
            coalesce(p_cache_write_1h_above, p_cache_write_above, p_input_above, p_input),
            coalesce(p_cache_write_1h, p_cache_write, p_input)
        ) as rate_cache_write_1h,
        if(above_tier, ifNull(p_output_above, p_output), p_output) as rate_output,
        if(is_batch and batch_multiplier is not null, batch_multiplier, toDecimal64(1, 9)) as rate_multiplier
    from with_prices
),

costed as (
    select
        *,
        if(
            has_price and input_tokens is not null and output_tokens is not null,
            {{ to_money(
                "(" ~ mtok_cost('uncached_input_tokens', 'rate_input')
                ~ " + " ~ mtok_cost('cache_read_tokens', 'rate_cache_read')
                ~ " + " ~ mtok_cost('cache_write_tokens', 'rate_cache_write')
                ~ " + " ~ mtok_cost('cache_write_1h_tokens', 'rate_cache_write_1h')
                ~ " + " ~ mtok_cost('output_tokens', 'rate_output')
                ~ ") * rate_multiplier + toDecimal128(ifNull(requests_kusd, toDecimal64(0, 9)), 18) / 1000"
            ) }},
            NULL
        ) as repriced_cost_usd
    from rated
)

select
    request_uid,
    workspace_id,
    device_id,
    machine_id,
    batch_id,
    started_at,
    ended_at,
    day,
    provider,
    model,
    model_requested,
    model_served,
    if(has_price, card_model, NULL) as card_model,
    endpoint,
    status_code,
    ifNull(status_code, 0) >= 400 as is_error,
    streamed,
    complete,
    service_tier,
    is_batch,
    input_tokens,
    output_tokens,
    cache_read_tokens,
    cache_write_tokens,
    cache_write_1h_tokens,
    reasoning_tokens,
    toUInt64(uncached_input_tokens) as uncached_input_tokens,
    project,
    attribution_tier,
    prompt_hash,
    if(prompt_hash is null, toUInt64(0), cityHash64(workspace_id, prompt_hash)) as prompt_hash_key,
    provider_request_id,
    latency_ms,
    ttfb_ms,
    price_card,
    if(has_price, price_valid_from, NULL) as price_valid_from,
    has_price and above_tier as above_tier,
    -- The card's rates this call was re-priced with (USD per million tokens, after the long-context tier),
    -- kept so a request's trace can show its arithmetic.
    if(has_price, rate_input, NULL) as rate_input_mtok,
    if(has_price, rate_cache_read, NULL) as rate_cache_read_mtok,
    if(has_price, rate_cache_write, NULL) as rate_cache_write_mtok,
    if(has_price, rate_cache_write_1h, NULL) as rate_cache_write_1h_mtok,
    if(has_price, rate_output, NULL) as rate_output_mtok,
    if(has_price, rate_multiplier, NULL) as rate_multiplier,
    if(has_price, requests_kusd, NULL) as rate_requests_kusd,
    logged_cost_usd,
    repriced_cost_usd,
    toDecimal64(coalesce(logged_cost_usd, repriced_cost_usd, toDecimal64(0, 9)), 9) as cost_usd,
    multiIf(
        logged_cost_usd is not null, 'logged',
        repriced_cost_usd is not null, 'repriced',
        'unpriced'
    ) as cost_source,
    if(
        logged_cost_usd is null or repriced_cost_usd is null,
        NULL,
        toDecimal64(logged_cost_usd - repriced_cost_usd, 9)
    ) as repricing_delta_usd,
    ingested_at,
    (select max(pulled_at) from {{ ref('stg_price_card__model_prices') }}) as prices_pulled_at,
    now64(3, 'UTC') as priced_at
from costed
