-- Optimisation recommendations, written by Dagster's `recommendations` asset (the only writer besides dbt in
-- {marts}; dbt never drops a relation it does not own). Each run of the asset writes the full set of every
-- workspace it looked at, then logs one row per workspace in {marts}.recommendation_runs: the current set of a
-- workspace is the rows of its newest logged run, so a pattern that is gone is gone from the next run, and
-- a run that failed half-way (rows written, no log row) is never read. History stays for the catalog.
-- recommendation_id is derived from (workspace, project, provider, kind, card model), never from time:
-- the same pattern keeps its id from run to run. Contract: halton_pipelines/recommendations/README.md.
CREATE TABLE IF NOT EXISTS {marts}.recommendations {on_cluster}
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

-- One row per workspace per finished run of the recommendations asset (also when it found nothing).
CREATE TABLE IF NOT EXISTS {marts}.recommendation_runs {on_cluster}
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

-- The current recommendations of every workspace: the rows of its newest logged run, one per id.
CREATE VIEW IF NOT EXISTS {marts}.recommendations_current {on_cluster} AS
SELECT recommendations.*
FROM {marts}.recommendations AS recommendations
INNER JOIN (
    SELECT workspace_id, argMax(run_id, computed_at) AS run_id
    FROM {marts}.recommendation_runs
    GROUP BY workspace_id
) AS newest
    ON recommendations.workspace_id = newest.workspace_id AND recommendations.run_id = newest.run_id
ORDER BY recommendations.workspace_id, recommendations.recommendation_id
LIMIT 1 BY recommendations.workspace_id, recommendations.recommendation_id;
