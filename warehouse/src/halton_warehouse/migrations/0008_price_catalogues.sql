-- Every price catalogue the cloud has published, written by Dagster's `price_catalogue` asset (it reads the
-- configured source daily, validates it, and stores a version only when it is new). The catalogue in force
-- is the newest row (by fetched_at); none stored means the catalogue packaged with halton-meter. The API
-- serves it to meters (`GET /v1/rates`) and the pipelines price with it. document is the catalogue's JSON
-- as fetched; sha256 is of document (the API's ETag); changes is the diff against the version before it,
-- one line per change (halton_meter.catalogue.diff), so a version's effect can be read later. One row per
-- version: a version stored twice (two runs at once) is kept once, reads dedupe with FINAL.
CREATE TABLE IF NOT EXISTS {raw}.price_catalogues {on_cluster}
(
    version       String,
    document      String CODEC(ZSTD(3)),
    sha256        FixedString(64),
    source        String,
    fetched_at    DateTime64(3, 'UTC'),
    changes       String CODEC(ZSTD(3))
)
ENGINE = ReplacingMergeTree(fetched_at)
ORDER BY version
