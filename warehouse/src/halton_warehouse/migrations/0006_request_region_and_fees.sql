-- Two facts a row needs so that the warehouse prices a call as the meter does (issue 17): the region the
-- provider says it served the call in (Anthropic usage.inference_geo, "us" or "global": US-only inference
-- costs a regional multiplier), and the web searches the provider billed per use (Anthropic
-- usage.server_tool_use.web_search_requests). Both are NULL when the provider did not say, never 0, and for
-- every row sent before this migration. Bounds: RequestRow.region (32 characters) and
-- RequestRow.web_search_requests (MAX_UNITS, inside UInt32).
-- ADD COLUMN only changes metadata (old parts read the default, NULL), and IF NOT EXISTS makes each
-- statement safe to run twice or from two processes at once.
-- One ALTER for both, so that the second column never looks for a first one a concurrent migrator's 0005
-- (which rebuilds the table) has just dropped.
ALTER TABLE {raw}.requests {on_cluster}
    ADD COLUMN IF NOT EXISTS region LowCardinality(Nullable(String)) AFTER ttfb_ms,
    ADD COLUMN IF NOT EXISTS web_search_requests Nullable(UInt32) AFTER region;

-- A view keeps the columns it had when it was created: recreate the read path so it shows the new ones.
CREATE OR REPLACE VIEW {raw}.requests_dedup {on_cluster} AS
SELECT * FROM {raw}.requests FINAL;
