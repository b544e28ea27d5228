-- Where each call came from (issue 24, halton_meter.origin): the calling process's git repository and
-- branch, the ticket key the meter found in the branch name, and the tool that made the call (claude-code,
-- codex-cli, cursor, anthropic-python...) with its version. NULL where the meter could not see it, and for
-- every row sent before this migration. Bounds: RequestRow (256, 256, 64, 64, 64 characters).
-- ADD COLUMN only changes metadata, and IF NOT EXISTS makes the statement safe to run twice; one ALTER for
-- all (see 0006 for why).
ALTER TABLE {raw}.requests {on_cluster}
    ADD COLUMN IF NOT EXISTS repository Nullable(String) AFTER web_search_requests,
    ADD COLUMN IF NOT EXISTS branch Nullable(String) AFTER repository,
    ADD COLUMN IF NOT EXISTS ticket Nullable(String) AFTER branch,
    ADD COLUMN IF NOT EXISTS tool LowCardinality(Nullable(String)) AFTER ticket,
    ADD COLUMN IF NOT EXISTS tool_version LowCardinality(Nullable(String)) AFTER tool;

-- A view keeps the columns it had when it was created: recreate the read path so it shows the new ones.
CREATE OR REPLACE VIEW {raw}.requests_dedup {on_cluster} AS
SELECT * FROM {raw}.requests FINAL;

-- A Distributed table keeps the columns it was created with (0010): on a cluster, recreate it over the
-- widened table. It holds no rows of its own, so nothing is lost; a single node has no such table.
CREATE OR REPLACE TABLE {raw}.requests_all {on_cluster} AS {raw}.requests
ENGINE = Distributed({cluster}, {raw}, requests, cityHash64(workspace_id));
