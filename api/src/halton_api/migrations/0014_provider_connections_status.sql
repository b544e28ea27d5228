-- Provider connections managed from the billing settings page (issue 19): the last four characters to show
-- beside the prefix, the last test an owner ran and the last pull the pipelines made (with the provider's
-- error in words when it failed). Keys are sealed with halton_meter.secretbox (purpose "provider-admin-key"),
-- the derivation the API and the pipelines share; keys sealed earlier with HKDF still open.
ALTER TABLE provider_connections
    ADD COLUMN key_last4       text NOT NULL DEFAULT '',
    ADD COLUMN tested_at       timestamptz,
    ADD COLUMN test_error      text,
    ADD COLUMN last_pull_at    timestamptz,
    ADD COLUMN last_pull_day   date,
    ADD COLUMN last_pull_error text;

-- Which of our projects a provider's own project (OpenAI) or workspace (Anthropic) bills for.
CREATE TABLE provider_project_map (
    workspace_id     uuid NOT NULL REFERENCES workspaces ON DELETE CASCADE,
    provider         text NOT NULL CHECK (provider IN ('anthropic', 'openai', 'xai')),
    provider_project text NOT NULL CHECK (provider_project <> ''),
    project_id       uuid NOT NULL REFERENCES projects ON DELETE CASCADE,
    created_by       uuid REFERENCES users ON DELETE SET NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, provider, provider_project)
);
