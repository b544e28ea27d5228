-- Budgets per cost center (issue 24, control-plane migration 0022): the snapshot of budgets carries the cost
-- center a budget is for (NULL for the workspace's and the projects' budgets, and in every snapshot taken
-- before this migration). ADD COLUMN only changes metadata, and IF NOT EXISTS makes it safe to run twice.
ALTER TABLE {raw}.budgets {on_cluster}
    ADD COLUMN IF NOT EXISTS cost_center_id Nullable(UUID) AFTER project_id;

-- A Distributed table keeps the columns it was created with (0010): on a cluster, recreate it over the
-- widened table. It holds no rows of its own, so nothing is lost; a single node has no such table.
CREATE OR REPLACE TABLE {raw}.budgets_all {on_cluster} AS {raw}.budgets
ENGINE = Distributed({cluster}, {raw}, budgets, cityHash64(workspace_id));
