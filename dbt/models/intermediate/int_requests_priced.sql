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
-- Every call with the cost the meter logged and its cost re-priced with the current catalogue (the price in force
-- when the call started). Rebuilt a day at a time: days with new arrivals, or every day when the catalogue changed.

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

catalogue_models as (
    select provider, card_model, any(match_priority) as match_priority, any(match_rules) as match_rules
    from prices
    group by provider, card_model
),

names as (
    select distinct provider, name_key
    from (
        select provider, lowerUTF8(model_served) as name_key from requests where ifNull(model_served, '') != ''
        union all
        select provider, lowerUTF8(model_requested) as name_key from requests where ifNull(model_requested, '') != ''
    )
),

resolved as (
    -- The catalogue model each name resolves to: the provider's first model, in catalogue order, that matches.
    select
        names.provider as name_provider,
        names.name_key as name_key,
        argMin(catalogue_models.card_model, catalogue_models.match_priority) as name_model
    from names
    inner join catalogue_models on names.provider = catalogue_models.provider
    where {{ matches_catalogue('names.name_key', 'catalogue_models.match_rules') }}
    group by names.provider, names.name_key
),

matched as (
    -- The served name first, then the requested one: the first that resolves names the model (as the meter).
    select
        requests.*,
        coalesce(nullIf(served.name_model, ''), nullIf(requested.name_model, '')) as resolved_model,
        {{ call_mode('requests.provider', 'requests.service_tier', 'requests.is_batch') }} as price_mode,
        greatest(requests.started_at, toDateTime64(0, 3, 'UTC')) as price_at
    from requests
    left join resolved as served
        on requests.provider = served.name_provider
        and lowerUTF8(ifNull(requests.model_served, '')) = served.name_key
    left join resolved as requested
        on requests.provider = requested.name_provider
        and lowerUTF8(ifNull(requests.model_requested, '')) = requested.name_key
),

with_prices as (
    select
        matched.*,
        prices.valid_from as price_valid_from,
        prices.priced as row_priced,
        prices.tier_aboves as tier_aboves,
        prices.input_mtok as p_input,
        prices.output_mtok as p_output,
        prices.cache_read_mtok as p_cache_read,
        prices.cache_write_5m_mtok as p_cache_write_5m,
        prices.cache_write_1h_mtok as p_cache_write_1h,
        prices.web_search_kusd as p_web_search_kusd,
        prices.region_names as region_names,
        prices.region_multipliers as region_multipliers
    from matched
    asof left join prices
        on matched.provider = prices.provider
        and ifNull(matched.resolved_model, '') = prices.card_model
        and matched.price_mode = prices.mode
        and matched.price_at >= prices.valid_from
),

rated as (
    select
        *,
        input_tokens is not null and output_tokens is not null as tokens_known,
        ifNull(status_code, 0) >= 400 and input_tokens is null and output_tokens is null as is_unbilled_error,
        toInt64(ifNull(input_tokens, 0)) - toInt64(ifNull(cache_read_tokens, 0))
            - toInt64(ifNull(cache_write_tokens, 0)) - toInt64(ifNull(cache_write_1h_tokens, 0)) as uncached_signed,
        -- The tier: how many thresholds the whole prompt is strictly above (1 = the base rates).
        arrayCount(above -> ifNull(input_tokens, 0) > above, ifNull(tier_aboves, [])) as tier,
        ifNull(row_priced, false) and tier > 0 as has_row,
        if(has_row, p_input[tier], NULL) as rate_input,
        if(has_row, p_cache_read[tier], NULL) as rate_cache_read,
        if(has_row, p_cache_write_5m[tier], NULL) as rate_cache_write,
        if(has_row, p_cache_write_1h[tier], NULL) as rate_cache_write_1h,
        if(has_row, p_output[tier], NULL) as rate_output,
        indexOf(ifNull(region_names, []), lowerUTF8(ifNull(region, ''))) as region_index,
        if(has_row and ifNull(region, '') != '' and region_index > 0, region_multipliers[region_index], NULL) as region_multiplier,
        ifNull(web_search_requests, 0) as searches,
        has_row and tokens_known and uncached_signed >= 0
            and not (ifNull(output_tokens, 0) > 0 and rate_output is null) as has_price
    from with_prices
),

costed as (
    select
        *,
        multiIf(
            is_unbilled_error, {{ to_money('toDecimal256(0, 9)') }},
            has_price, {{ to_money(exact_call_cost(
                tokens=[('toUInt64(uncached_signed)', 'rate_input'), ('cache_read_tokens', 'rate_cache_read'),
                        ('cache_write_tokens', 'rate_cache_write'), ('cache_write_1h_tokens', 'rate_cache_write_1h'),
                        ('output_tokens', 'rate_output')],
                multiplier='region_multiplier',
                fee_count='searches',
                fee_kusd='p_web_search_kusd',
            )) }},
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
    if(has_price, resolved_model, NULL) as card_model,
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
    toUInt64(greatest(uncached_signed, 0)) as uncached_input_tokens,
    project,
    attribution_tier,
    prompt_hash,
    if(prompt_hash is null, toUInt64(0), cityHash64(workspace_id, prompt_hash)) as prompt_hash_key,
    provider_request_id,
    latency_ms,
    ttfb_ms,
    price_card,
    if(has_price, price_valid_from, NULL) as price_valid_from,
    price_mode,
    region,
    web_search_requests,
    repository,
    branch,
    ticket,
    tool,
    tool_version,
    has_price and tier > 1 as above_tier,
    -- The card's rates this call was re-priced with (USD per million tokens, after the long-context tier),
    -- kept so a request's trace can show its arithmetic.
    if(has_price, rate_input, NULL) as rate_input_mtok,
    if(has_price, rate_cache_read, NULL) as rate_cache_read_mtok,
    if(has_price, rate_cache_write, NULL) as rate_cache_write_mtok,
    if(has_price, rate_cache_write_1h, NULL) as rate_cache_write_1h_mtok,
    if(has_price, rate_output, NULL) as rate_output_mtok,
    if(has_price, ifNull(region_multiplier, toDecimal64(1, 9)), NULL) as rate_multiplier,
    if(has_price, p_web_search_kusd, NULL) as rate_web_search_kusd,
    -- This call's per-call fees as USD per thousand such calls (its web searches at their price per 1,000).
    if(has_price and searches > 0 and p_web_search_kusd is not null, toDecimal64(searches * p_web_search_kusd, 9), NULL)
        as rate_requests_kusd,
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
    (select max(pulled_at) from {{ ref('stg_price_card__rate_rows') }}) as prices_pulled_at,
    now64(3, 'UTC') as priced_at
from costed
