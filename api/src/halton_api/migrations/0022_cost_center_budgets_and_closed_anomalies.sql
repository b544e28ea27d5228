-- Issue 24: a monthly budget for a cost center (the spend of its projects), alerted on like the others; and
-- runaway anomalies an owner acknowledges and closes, with who closed them, when, and why.

-- A budget is for the workspace (both NULL), one project or one cost center, never both.
ALTER TABLE budgets ADD COLUMN cost_center_id uuid REFERENCES cost_centers ON DELETE CASCADE;
ALTER TABLE budgets ADD CONSTRAINT budgets_one_scope CHECK (num_nonnulls(project_id, cost_center_id) <= 1);
DROP INDEX budgets_workspace_key;
CREATE UNIQUE INDEX budgets_workspace_key ON budgets (workspace_id)
    WHERE project_id IS NULL AND cost_center_id IS NULL;
CREATE UNIQUE INDEX budgets_cost_center_key ON budgets (workspace_id, cost_center_id)
    WHERE cost_center_id IS NOT NULL;

-- A closed anomaly keeps its row: the unique (workspace, anomaly key) is what stops the pipelines raising the
-- same anomaly for the same window again.
ALTER TABLE spend_anomalies ADD COLUMN closed_at timestamptz;
ALTER TABLE spend_anomalies ADD COLUMN closed_by text;
ALTER TABLE spend_anomalies ADD COLUMN close_note text CHECK (char_length(close_note) <= 1000);

-- Closing an anomaly cancels its deliveries not made yet (pending, or waiting for a retry): they never go out.
ALTER TABLE alert_deliveries DROP CONSTRAINT alert_deliveries_status_check;
ALTER TABLE alert_deliveries ADD CONSTRAINT alert_deliveries_status_check
    CHECK (status IN ('pending', 'delivered', 'failed', 'cancelled'));
