-- Which of our projects each provider project (OpenAI) or workspace (Anthropic) bills for, as owners map
-- them on the billing settings page; copied whole from the control plane by each snapshot (logged in
-- {raw}.snapshots) so the marts can reconcile billing lines per project. A provider project with no row here
-- is unmapped: its lines are never counted against one of our projects.
CREATE TABLE IF NOT EXISTS {raw}.provider_project_map {on_cluster}
(
    workspace_id      UUID,
    provider          LowCardinality(String),
    provider_project  String,
    project_id        UUID,
    created_at        DateTime64(3, 'UTC'),
    snapshot_at       DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(snapshot_at)
ORDER BY (workspace_id, provider, provider_project);
