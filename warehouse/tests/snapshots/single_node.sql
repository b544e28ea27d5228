-- 0001_raw_requests
CREATE DATABASE IF NOT EXISTS raw  ENGINE = Atomic;
CREATE TABLE IF NOT EXISTS raw.requests
(
    workspace_id          UUID,
    device_id             UUID,
    request_uid           UUID,
    machine_id            String,
    batch_id              UUID,
    started_at            DateTime64(3, 'UTC'),
    ended_at              DateTime64(3, 'UTC'),
    provider              LowCardinality(String),
    model_requested       LowCardinality(Nullable(String)),
    model_served          LowCardinality(Nullable(String)),
    endpoint              LowCardinality(String),
    status_code           Nullable(UInt16),
    streamed              Bool,
    complete              Bool,
    service_tier          LowCardinality(Nullable(String)),
    batch                 Bool,
    input_tokens          Nullable(UInt64),
    output_tokens         Nullable(UInt64),
    cache_read_tokens     Nullable(UInt64),
    cache_write_tokens    Nullable(UInt64),
    cache_write_1h_tokens Nullable(UInt64),
    reasoning_tokens      Nullable(UInt64),
    cost_usd              Nullable(Decimal(18, 9)),
    price_card            LowCardinality(Nullable(String)),
    project               LowCardinality(String),
    attribution_tier      LowCardinality(String),
    prompt_hash           Nullable(String) CODEC(ZSTD(3)),
    provider_request_id   Nullable(String) CODEC(ZSTD(3)),
    latency_ms            Nullable(UInt32),
    ttfb_ms               Nullable(UInt32),
    ingested_at           DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY toYYYYMM(started_at)
ORDER BY (workspace_id, toDate(started_at), request_uid);
CREATE VIEW IF NOT EXISTS raw.requests_dedup  AS
SELECT * FROM raw.requests FINAL;
-- 0003_billing_and_dims
CREATE DATABASE IF NOT EXISTS marts  ENGINE = Atomic;
CREATE TABLE IF NOT EXISTS raw.provider_costs
(
    workspace_id     UUID,
    provider         LowCardinality(String),
    day              Date,
    source           LowCardinality(String),
    line_item        String,
    provider_project String DEFAULT '',
    model            LowCardinality(String) DEFAULT '',
    amount           Decimal(18, 9),
    currency         LowCardinality(String) DEFAULT 'USD',
    pulled_at        DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(pulled_at)
PARTITION BY toYYYYMM(day)
ORDER BY (workspace_id, provider, day, source, line_item, provider_project);
CREATE TABLE IF NOT EXISTS raw.provider_usage
(
    workspace_id         UUID,
    provider             LowCardinality(String),
    day                  Date,
    source               LowCardinality(String),
    model                String,
    provider_project     String DEFAULT '',
    input_tokens         UInt64,
    cached_input_tokens  UInt64,
    cache_write_tokens   UInt64,
    output_tokens        UInt64,
    requests             Nullable(UInt64),
    pulled_at            DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(pulled_at)
PARTITION BY toYYYYMM(day)
ORDER BY (workspace_id, provider, day, source, model, provider_project);
CREATE TABLE IF NOT EXISTS raw.billing_statements
(
    workspace_id  UUID,
    provider      LowCardinality(String),
    period        Date,
    amount        Decimal(18, 9),
    currency      LowCardinality(String) DEFAULT 'USD',
    note          String DEFAULT '' CODEC(ZSTD(3)),
    entered_by    Nullable(UUID),
    entered_at    DateTime64(3, 'UTC'),
    snapshot_at   DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(snapshot_at)
ORDER BY (workspace_id, provider, period);
CREATE TABLE IF NOT EXISTS raw.model_prices
(
    provider                   LowCardinality(String),
    model                      String,
    valid_from                 DateTime64(3, 'UTC'),
    valid_to                   Nullable(DateTime64(3, 'UTC')),
    match_priority             UInt32,
    match_rules                Array(Tuple(kind LowCardinality(String), value String)),
    input_mtok                 Decimal(18, 9),
    cache_read_mtok            Nullable(Decimal(18, 9)),
    cache_write_mtok           Nullable(Decimal(18, 9)),
    cache_write_1h_mtok        Nullable(Decimal(18, 9)),
    output_mtok                Decimal(18, 9),
    tier_threshold_tokens      Nullable(UInt64),
    input_mtok_above           Nullable(Decimal(18, 9)),
    cache_read_mtok_above      Nullable(Decimal(18, 9)),
    cache_write_mtok_above     Nullable(Decimal(18, 9)),
    cache_write_1h_mtok_above  Nullable(Decimal(18, 9)),
    output_mtok_above          Nullable(Decimal(18, 9)),
    requests_kusd              Nullable(Decimal(18, 9)),
    batch_multiplier           Nullable(Decimal(18, 9)),
    card                       LowCardinality(String),
    source                     LowCardinality(String),
    pulled_at                  DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(pulled_at)
ORDER BY (provider, model, valid_from);
CREATE TABLE IF NOT EXISTS raw.snapshots
(
    source       LowCardinality(String),
    snapshot_at  DateTime64(3, 'UTC'),
    row_count    UInt64
)
ENGINE = ReplacingMergeTree(snapshot_at)
ORDER BY source;
CREATE TABLE IF NOT EXISTS raw.workspaces
(
    workspace_id  UUID,
    slug          String,
    name          String,
    created_at    DateTime64(3, 'UTC'),
    snapshot_at   DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(snapshot_at)
ORDER BY (workspace_id);
CREATE TABLE IF NOT EXISTS raw.members
(
    workspace_id  UUID,
    user_id       UUID,
    email         String,
    name          String,
    role          LowCardinality(String),
    joined_at     DateTime64(3, 'UTC'),
    snapshot_at   DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(snapshot_at)
ORDER BY (workspace_id, user_id);
CREATE TABLE IF NOT EXISTS raw.devices
(
    workspace_id  UUID,
    device_id     UUID,
    machine_id    String,
    hostname      String,
    name          String,
    paired_by     Nullable(UUID),
    paired_at     DateTime64(3, 'UTC'),
    last_sync_at  Nullable(DateTime64(3, 'UTC')),
    status        LowCardinality(String),
    snapshot_at   DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(snapshot_at)
ORDER BY (workspace_id, device_id);
CREATE TABLE IF NOT EXISTS raw.cost_centers
(
    workspace_id    UUID,
    cost_center_id  UUID,
    name            String,
    created_at      DateTime64(3, 'UTC'),
    snapshot_at     DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(snapshot_at)
ORDER BY (workspace_id, cost_center_id);
CREATE TABLE IF NOT EXISTS raw.projects
(
    workspace_id    UUID,
    project_id      UUID,
    slug            String,
    name            String,
    archived        Bool,
    hourly_rate     Nullable(Decimal(18, 9)),
    cost_center_id  Nullable(UUID),
    created_at      DateTime64(3, 'UTC'),
    snapshot_at     DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(snapshot_at)
ORDER BY (workspace_id, project_id);
CREATE TABLE IF NOT EXISTS raw.budgets
(
    workspace_id    UUID,
    budget_id       UUID,
    project_id      Nullable(UUID),
    monthly_amount  Decimal(18, 9),
    currency        LowCardinality(String),
    updated_at      DateTime64(3, 'UTC'),
    snapshot_at     DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(snapshot_at)
ORDER BY (workspace_id, budget_id);
-- 0004_recommendations
CREATE TABLE IF NOT EXISTS marts.recommendations
(
    workspace_id                     UUID,
    run_id                           UUID,
    computed_at                      DateTime64(3, 'UTC'),
    recommendation_id                UUID,
    kind                             LowCardinality(String),
    project                          String,
    provider                         LowCardinality(String),
    model                            String,
    target_model                     String DEFAULT '',
    title                            String,
    explanation                      String CODEC(ZSTD(3)),
    monthly_saving_usd               Decimal(18, 9),
    confidence                       LowCardinality(String),
    confidence_rule                  String,
    affected_requests                UInt64,
    evidence                         String CODEC(ZSTD(3)),
    sample_request_uids              Array(UUID),
    sample_provider_request_ids      Array(String) CODEC(ZSTD(3)),
    scope_models                     Array(String),
    baseline_start                   Date,
    baseline_end                     Date,
    baseline_requests                UInt64,
    baseline_spend_usd               Decimal(18, 9),
    baseline_input_tokens            UInt64,
    baseline_output_tokens           UInt64,
    baseline_spend_per_day_usd       Decimal(18, 9),
    baseline_cost_per_request_usd    Decimal(18, 9),
    expected_saving_per_request_usd  Decimal(18, 9),
    realised_method                  LowCardinality(String),
    price_card                       String
)
ENGINE = ReplacingMergeTree(computed_at)
PARTITION BY toYYYYMM(computed_at)
ORDER BY (workspace_id, run_id, recommendation_id);
CREATE TABLE IF NOT EXISTS marts.recommendation_runs
(
    workspace_id     UUID,
    run_id           UUID,
    computed_at      DateTime64(3, 'UTC'),
    window_start     Date,
    window_end       Date,
    recommendations  UInt32
)
ENGINE = ReplacingMergeTree(computed_at)
ORDER BY (workspace_id, computed_at, run_id);
CREATE VIEW IF NOT EXISTS marts.recommendations_current  AS
SELECT recommendations.*
FROM marts.recommendations AS recommendations
INNER JOIN (
    SELECT workspace_id, argMax(run_id, computed_at) AS run_id
    FROM marts.recommendation_runs
    GROUP BY workspace_id
) AS newest
    ON recommendations.workspace_id = newest.workspace_id AND recommendations.run_id = newest.run_id
ORDER BY recommendations.workspace_id, recommendations.recommendation_id
LIMIT 1 BY recommendations.workspace_id, recommendations.recommendation_id;
-- 0005_requests_keyed_by_time
CREATE OR REPLACE TABLE raw.requests
(
    workspace_id          UUID,
    device_id             UUID,
    request_uid           UUID,
    machine_id            String,
    batch_id              UUID,
    started_at            DateTime64(3, 'UTC'),
    ended_at              DateTime64(3, 'UTC'),
    provider              LowCardinality(String),
    model_requested       LowCardinality(Nullable(String)),
    model_served          LowCardinality(Nullable(String)),
    endpoint              LowCardinality(String),
    status_code           Nullable(UInt16),
    streamed              Bool,
    complete              Bool,
    service_tier          LowCardinality(Nullable(String)),
    batch                 Bool,
    input_tokens          Nullable(UInt64),
    output_tokens         Nullable(UInt64),
    cache_read_tokens     Nullable(UInt64),
    cache_write_tokens    Nullable(UInt64),
    cache_write_1h_tokens Nullable(UInt64),
    reasoning_tokens      Nullable(UInt64),
    cost_usd              Nullable(Decimal(18, 9)),
    price_card            LowCardinality(Nullable(String)),
    project               LowCardinality(String),
    attribution_tier      LowCardinality(String),
    prompt_hash           Nullable(String) CODEC(ZSTD(3)),
    provider_request_id   Nullable(String) CODEC(ZSTD(3)),
    latency_ms            Nullable(UInt32),
    ttfb_ms               Nullable(UInt32),
    ingested_at           DateTime64(3, 'UTC') DEFAULT now64(3),
    INDEX request_uid_bloom request_uid TYPE bloom_filter GRANULARITY 1
)
ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY toYYYYMM(started_at)
ORDER BY (workspace_id, toDate(started_at), machine_id, started_at, request_uid)
AS SELECT * FROM raw.requests;
-- 0006_request_region_and_fees
ALTER TABLE raw.requests
    ADD COLUMN IF NOT EXISTS region LowCardinality(Nullable(String)) AFTER ttfb_ms,
    ADD COLUMN IF NOT EXISTS web_search_requests Nullable(UInt32) AFTER region;
CREATE OR REPLACE VIEW raw.requests_dedup  AS
SELECT * FROM raw.requests FINAL;
-- 0007_rate_rows
CREATE TABLE IF NOT EXISTS raw.rate_rows
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
DROP TABLE IF EXISTS raw.model_prices;
-- 0008_price_catalogues
CREATE TABLE IF NOT EXISTS raw.price_catalogues
(
    version       String,
    document      String CODEC(ZSTD(3)),
    sha256        FixedString(64),
    source        String,
    fetched_at    DateTime64(3, 'UTC'),
    changes       String CODEC(ZSTD(3))
)
ENGINE = ReplacingMergeTree(fetched_at)
ORDER BY version;
-- 0009_provider_project_map
CREATE TABLE IF NOT EXISTS raw.provider_project_map
(
    workspace_id      UUID,
    provider          LowCardinality(String),
    provider_project  String,
    project_id        UUID,
    created_at        DateTime64(3, 'UTC'),
    snapshot_at       DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(snapshot_at)
ORDER BY (workspace_id, provider, provider_project);
-- 0010_distributed_by_workspace
;
-- 0011_request_origin
ALTER TABLE raw.requests
    ADD COLUMN IF NOT EXISTS repository Nullable(String) AFTER web_search_requests,
    ADD COLUMN IF NOT EXISTS branch Nullable(String) AFTER repository,
    ADD COLUMN IF NOT EXISTS ticket Nullable(String) AFTER branch,
    ADD COLUMN IF NOT EXISTS tool LowCardinality(Nullable(String)) AFTER ticket,
    ADD COLUMN IF NOT EXISTS tool_version LowCardinality(Nullable(String)) AFTER tool;
CREATE OR REPLACE VIEW raw.requests_dedup  AS
SELECT * FROM raw.requests FINAL;
-- 0013_cost_center_budgets
ALTER TABLE raw.budgets
    ADD COLUMN IF NOT EXISTS cost_center_id Nullable(UUID) AFTER project_id;
