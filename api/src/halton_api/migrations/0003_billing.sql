-- Billing inputs the Dagster pipelines read: provider admin-key connections and pasted statements.

-- Provider admin keys for the billing pulls (halton_pipelines.provider_keys): keys encrypted with a Fernet key derived
-- from HALTON_SECRET_KEY (HKDF-SHA256, info "halton provider connections v1").
CREATE TABLE provider_connections (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    workspace_id        uuid NOT NULL REFERENCES workspaces ON DELETE CASCADE,
    provider            text NOT NULL CHECK (provider IN ('anthropic', 'openai', 'xai')),
    admin_key_encrypted bytea NOT NULL,
    key_prefix          text NOT NULL,
    team_id             text,
    created_by          uuid REFERENCES users ON DELETE SET NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    revoked_at          timestamptz,
    UNIQUE (workspace_id, provider)
);

-- Monthly statement totals pasted in the reconciliation page.
CREATE TABLE billing_statements (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    workspace_id uuid NOT NULL REFERENCES workspaces ON DELETE CASCADE,
    provider     text NOT NULL CHECK (provider IN ('anthropic', 'openai', 'gemini', 'xai')),
    period       date NOT NULL CHECK (period = date_trunc('month', period)::date),
    amount       numeric(18, 9) NOT NULL CHECK (amount >= 0),
    currency     text NOT NULL DEFAULT 'USD',
    note         text NOT NULL DEFAULT '',
    entered_by   uuid REFERENCES users ON DELETE SET NULL,
    entered_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (workspace_id, provider, period)
);
