-- A Distributed table over each workspace-keyed table, sharded by workspace (`<table>_all`): a workspace's rows
-- all live on one shard, so every per-workspace query (ingestion's probe, dbt's models, the dashboards) is
-- answered by one shard's replicas, and a cluster grows by adding shards. Rendered only for a cluster
-- (HALTON_CLICKHOUSE_CLUSTER): a single node has nothing to distribute over, and `render` leaves out every
-- Distributed table there, so this version is recorded and creates nothing. The plan (shards, replicas,
-- Keeper, which process writes and reads which name) is docs/production.md's.
CREATE TABLE IF NOT EXISTS {raw}.requests_all {on_cluster} AS {raw}.requests
ENGINE = Distributed({cluster}, {raw}, requests, cityHash64(workspace_id));
CREATE TABLE IF NOT EXISTS {raw}.provider_costs_all {on_cluster} AS {raw}.provider_costs
ENGINE = Distributed({cluster}, {raw}, provider_costs, cityHash64(workspace_id));
CREATE TABLE IF NOT EXISTS {raw}.provider_usage_all {on_cluster} AS {raw}.provider_usage
ENGINE = Distributed({cluster}, {raw}, provider_usage, cityHash64(workspace_id));
CREATE TABLE IF NOT EXISTS {raw}.billing_statements_all {on_cluster} AS {raw}.billing_statements
ENGINE = Distributed({cluster}, {raw}, billing_statements, cityHash64(workspace_id));
CREATE TABLE IF NOT EXISTS {raw}.workspaces_all {on_cluster} AS {raw}.workspaces
ENGINE = Distributed({cluster}, {raw}, workspaces, cityHash64(workspace_id));
CREATE TABLE IF NOT EXISTS {raw}.members_all {on_cluster} AS {raw}.members
ENGINE = Distributed({cluster}, {raw}, members, cityHash64(workspace_id));
CREATE TABLE IF NOT EXISTS {raw}.devices_all {on_cluster} AS {raw}.devices
ENGINE = Distributed({cluster}, {raw}, devices, cityHash64(workspace_id));
CREATE TABLE IF NOT EXISTS {raw}.cost_centers_all {on_cluster} AS {raw}.cost_centers
ENGINE = Distributed({cluster}, {raw}, cost_centers, cityHash64(workspace_id));
CREATE TABLE IF NOT EXISTS {raw}.provider_project_map_all {on_cluster} AS {raw}.provider_project_map
ENGINE = Distributed({cluster}, {raw}, provider_project_map, cityHash64(workspace_id));
CREATE TABLE IF NOT EXISTS {raw}.projects_all {on_cluster} AS {raw}.projects
ENGINE = Distributed({cluster}, {raw}, projects, cityHash64(workspace_id));
CREATE TABLE IF NOT EXISTS {raw}.budgets_all {on_cluster} AS {raw}.budgets
ENGINE = Distributed({cluster}, {raw}, budgets, cityHash64(workspace_id));
CREATE TABLE IF NOT EXISTS {marts}.recommendations_all {on_cluster} AS {marts}.recommendations
ENGINE = Distributed({cluster}, {marts}, recommendations, cityHash64(workspace_id));
CREATE TABLE IF NOT EXISTS {marts}.recommendation_runs_all {on_cluster} AS {marts}.recommendation_runs
ENGINE = Distributed({cluster}, {marts}, recommendation_runs, cityHash64(workspace_id));
