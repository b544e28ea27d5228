-- raw.requests sorted by (workspace_id, day, machine_id, started_at, request_uid) instead of (workspace_id,
-- day, request_uid). For every batch, ingestion asks which of its request_uids the workspace already has.
-- With request_uid right after the day, a batch's UUIDs are scattered over every granule of the day and the
-- question read the whole day: 40-60 ms of CPU per 1,000 UUIDs against a 2-million-row day. A row can only
-- be re-sent by its own machine (a sync token sends only its machine's rows), at its own start, so with
-- machine_id and started_at in the key the question reads only the batch's machine and time window (6-10
-- ms; bench/RESULTS.md, "Ingestion"). A re-sent row has the same machine, start and request_uid, so
-- ReplacingMergeTree still keeps one copy, and reads still go through {raw}.requests_dedup (FINAL), which
-- names the table. Looking one request up by request_uid (search, traces) no longer follows the key, so a
-- bloom filter index answers it: a 30-day search of 4 million rows 84 -> 6 ms (14 ms with the old key), for
-- ~0.1 ms more per 1,000 inserted rows.
-- CREATE OR REPLACE fills a new table from the old one and swaps it in atomically, so running this twice,
-- or from two processes at once, leaves the same table with the same rows. It copies every row (2 million
-- in 1.8 s on two cores): run it before the API serves (halton-cloud up and `halton-cloud migrate` do), or a
-- batch written during the copy would be left out. Its cluster form (ON CLUSTER, Replicated*) is rendered
-- and snapshotted but has not been run against a real cluster.
CREATE OR REPLACE TABLE {raw}.requests {on_cluster}
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
AS SELECT * FROM {raw}.requests;
