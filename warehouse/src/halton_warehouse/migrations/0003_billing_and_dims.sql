-- What the providers billed, what the price card says, and a copy of the control plane's dimensions.
-- Written only by Dagster (billing pulls, the price card, the control-plane snapshot); read by dbt staging,
-- which dedupes every table here itself: merges are never trusted for reads.
-- The marts database is created here (Atomic) so dbt never creates it with the engine's default.
CREATE DATABASE IF NOT EXISTS {marts} {on_cluster} ENGINE = Atomic;

-- One row per provider billing line (model or line item) per UTC day, as one pull saw it.
-- A re-pull of a day writes every line of that day again with a newer pulled_at; staging keeps the newest pull
-- of each (workspace, provider, day, source), so a line the provider later dropped disappears too.
-- amount is in `currency` units (USD), already converted from cents where the provider sends cents.
CREATE TABLE IF NOT EXISTS {raw}.provider_costs {on_cluster}
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

-- Tokens the providers counted per model per UTC day (usage endpoints), for token-level reconciliation.
-- input_tokens includes cached tokens, as everywhere in Halton. Same newest-pull rule as provider_costs.
CREATE TABLE IF NOT EXISTS {raw}.provider_usage {on_cluster}
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

-- Monthly statement totals a person pasted in the dashboard, copied from the control plane like the
-- dimensions below (snapshot_at, logged in {raw}.snapshots). period is the first day of the billed month.
CREATE TABLE IF NOT EXISTS {raw}.billing_statements {on_cluster}
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

-- The price card: one row per model per price period, USD per million tokens. A price applies from
-- valid_from until the next period of the same model starts (or valid_to, when set). match_rules tell which
-- model names the row prices, in the card's own order of precedence (match_priority, lowest first).
-- A tier (tier_threshold_tokens) re-prices the whole request at the *_above rates when its input tokens
-- exceed the threshold. Cache and batch prices left NULL fall back to the input price and to no discount.
CREATE TABLE IF NOT EXISTS {raw}.model_prices {on_cluster}
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

-- Control-plane dimensions, copied whole by each snapshot. Every row of one snapshot carries the same
-- snapshot_at, and a finished snapshot is logged in {raw}.snapshots. Staging keeps the newest version of each
-- row and drops rows older than the newest logged snapshot of their table: a row deleted in the control plane
-- vanishes, and a table emptied there reads as empty.
CREATE TABLE IF NOT EXISTS {raw}.snapshots {on_cluster}
(
    source       LowCardinality(String),
    snapshot_at  DateTime64(3, 'UTC'),
    row_count    UInt64
)
ENGINE = ReplacingMergeTree(snapshot_at)
ORDER BY source;

CREATE TABLE IF NOT EXISTS {raw}.workspaces {on_cluster}
(
    workspace_id  UUID,
    slug          String,
    name          String,
    created_at    DateTime64(3, 'UTC'),
    snapshot_at   DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(snapshot_at)
ORDER BY (workspace_id);

CREATE TABLE IF NOT EXISTS {raw}.members {on_cluster}
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

CREATE TABLE IF NOT EXISTS {raw}.devices {on_cluster}
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

CREATE TABLE IF NOT EXISTS {raw}.cost_centers {on_cluster}
(
    workspace_id    UUID,
    cost_center_id  UUID,
    name            String,
    created_at      DateTime64(3, 'UTC'),
    snapshot_at     DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(snapshot_at)
ORDER BY (workspace_id, cost_center_id);

CREATE TABLE IF NOT EXISTS {raw}.projects {on_cluster}
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

-- A monthly budget for the whole workspace (project_id NULL) or for one project.
CREATE TABLE IF NOT EXISTS {raw}.budgets {on_cluster}
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
