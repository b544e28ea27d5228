-- 0001_raw_requests
CREATE DATABASE IF NOT EXISTS raw ON CLUSTER 'halton' ENGINE = Atomic;
CREATE TABLE IF NOT EXISTS raw.requests ON CLUSTER 'halton'
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
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', ingested_at)
PARTITION BY toYYYYMM(started_at)
ORDER BY (workspace_id, toDate(started_at), request_uid);
CREATE VIEW IF NOT EXISTS raw.requests_dedup ON CLUSTER 'halton' AS
SELECT * FROM raw.requests FINAL;
