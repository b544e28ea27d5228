-- The price catalogue as the meter prices with it: halton_meter.catalogue.rate_rows, one row per catalogue
-- version, model, mode (standard, batch, flex, priority) and day a price starts, every rate already resolved
-- (mode fallbacks, missing cache rates, size tiers). dbt re-prices every call from these rows with the rules
-- of halton_meter.pricing, so the warehouse and the meter give the same cost to the nano-dollar.
-- - A row holds from valid_from until the next row of the same catalogue, model and mode. Staging reads the
--   newest catalogue only (the one written last): a model removed from the catalogue stops pricing.
-- - Tiers are parallel arrays: tier_aboves[i] is the prompt size (cache reads and writes included) a request
--   must be strictly above to take the rates at i (tier_aboves[1] = -1, every request). output is NULL where
--   the model has no output price (embeddings). A row with priced = false says "no price in this mode".
-- - match_rules: the model names the row prices, any of (all of (kind, value)), compared lower-cased; the
--   first model of a provider in catalogue order (match_priority) that matches wins. A regex that RE2 cannot
--   run (a leading negative lookahead) is written as kind not_regex (halton_pipelines.price_card).
-- - regions: a multiplier on every token cost for a call served there; web_search_per_1k: USD per 1,000
--   web searches, on top of tokens.
-- Amounts are USD per million tokens, Decimal(18, 9): the writer refuses a rate that does not fit exactly.
CREATE TABLE IF NOT EXISTS {raw}.rate_rows {on_cluster}
(
    catalogue           LowCardinality(String),
    provider            LowCardinality(String),
    model               String,
    mode                LowCardinality(String),
    valid_from          Date,
    match_priority      UInt32,
    match_rules         Array(Array(Tuple(kind LowCardinality(String), value String))),
    priced              Bool,
    tier_aboves         Array(Int64),
    input               Array(Decimal(18, 9)),
    output              Array(Nullable(Decimal(18, 9))),
    cache_read          Array(Decimal(18, 9)),
    cache_write_5m      Array(Decimal(18, 9)),
    cache_write_1h      Array(Decimal(18, 9)),
    web_search_per_1k   Nullable(Decimal(18, 9)),
    region_names        Array(String),
    region_multipliers  Array(Decimal(18, 9)),
    rules               Array(String),
    source              String,
    pulled_at           DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(pulled_at)
ORDER BY (catalogue, provider, model, mode, valid_from);

-- The genai-prices card that rate_rows replaces: nothing reads or writes it any more, and it is derived data
-- (the catalogue holds every price it held, and more).
DROP TABLE IF EXISTS {raw}.model_prices {on_cluster};
