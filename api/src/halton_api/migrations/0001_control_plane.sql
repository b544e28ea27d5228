-- The control plane: people, workspaces, machines, keys, projects, budgets and the audit trail.
-- Tokens, keys and session ids are never stored in clear: only a sha256 digest and a short prefix to show.

CREATE TABLE users (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email         text NOT NULL,
    name          text NOT NULL DEFAULT '',
    password_hash text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

CREATE TABLE sessions (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id      uuid NOT NULL REFERENCES users ON DELETE CASCADE,
    token_hash   bytea NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    user_agent   text NOT NULL DEFAULT ''
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE workspaces (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    slug       text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]{1,62}$'),
    name       text NOT NULL,
    created_by uuid REFERENCES users ON DELETE SET NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE memberships (
    workspace_id uuid NOT NULL REFERENCES workspaces ON DELETE CASCADE,
    user_id      uuid NOT NULL REFERENCES users ON DELETE CASCADE,
    role         text NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'viewer')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, user_id)
);
CREATE INDEX memberships_user ON memberships (user_id);

CREATE TABLE invitations (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    workspace_id uuid NOT NULL REFERENCES workspaces ON DELETE CASCADE,
    email        text NOT NULL,
    role         text NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'viewer')),
    token_hash   bytea NOT NULL UNIQUE,
    token_prefix text NOT NULL,
    invited_by   uuid REFERENCES users ON DELETE SET NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    accepted_at  timestamptz,
    accepted_by  uuid REFERENCES users ON DELETE SET NULL,
    revoked_at   timestamptz
);
CREATE INDEX invitations_workspace ON invitations (workspace_id, created_at DESC);

-- A device is one paired machine in one workspace. Its status says what its token may do:
-- active  -> batches accepted;
-- removed -> the owner took the machine out of the workspace: 403, reversible by reinstating it;
-- revoked -> the token is dead (dashboard revoke or `cloud disconnect`): 401 until the machine re-pairs.
CREATE TABLE devices (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    workspace_id      uuid NOT NULL REFERENCES workspaces ON DELETE CASCADE,
    machine_id        text NOT NULL,
    hostname          text NOT NULL DEFAULT '',
    name              text NOT NULL DEFAULT '',
    paired_by         uuid REFERENCES users ON DELETE SET NULL,
    paired_at         timestamptz NOT NULL DEFAULT now(),
    last_sync_at      timestamptz,
    status            text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'removed', 'revoked')),
    status_changed_at timestamptz NOT NULL DEFAULT now(),
    token_hash        bytea NOT NULL UNIQUE,
    token_prefix      text NOT NULL,
    UNIQUE (workspace_id, machine_id)
);

CREATE TABLE api_keys (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    workspace_id uuid NOT NULL REFERENCES workspaces ON DELETE CASCADE,
    name         text NOT NULL,
    key_hash     bytea NOT NULL UNIQUE,
    key_prefix   text NOT NULL,
    created_by   uuid REFERENCES users ON DELETE SET NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);
CREATE INDEX api_keys_workspace ON api_keys (workspace_id, created_at DESC);

CREATE TABLE cost_centers (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    workspace_id uuid NOT NULL REFERENCES workspaces ON DELETE CASCADE,
    name         text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (workspace_id, name)
);

-- Projects register themselves from the slugs meters send; people then name, archive and price them.
CREATE TABLE projects (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    workspace_id   uuid NOT NULL REFERENCES workspaces ON DELETE CASCADE,
    slug           text NOT NULL,
    name           text NOT NULL,
    archived       boolean NOT NULL DEFAULT false,
    hourly_rate    numeric(18, 2) CHECK (hourly_rate >= 0),
    cost_center_id uuid REFERENCES cost_centers ON DELETE SET NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (workspace_id, slug)
);

-- A monthly budget for the whole workspace (project_id NULL) or for one project.
CREATE TABLE budgets (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    workspace_id   uuid NOT NULL REFERENCES workspaces ON DELETE CASCADE,
    project_id     uuid REFERENCES projects ON DELETE CASCADE,
    monthly_amount numeric(18, 2) NOT NULL CHECK (monthly_amount >= 0),
    currency       text NOT NULL DEFAULT 'USD',
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX budgets_workspace_key ON budgets (workspace_id) WHERE project_id IS NULL;
CREATE UNIQUE INDEX budgets_project_key ON budgets (workspace_id, project_id) WHERE project_id IS NOT NULL;

-- Who did what to which thing, written in the same transaction as the change itself.
CREATE TABLE audit_events (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    workspace_id  uuid NOT NULL REFERENCES workspaces ON DELETE CASCADE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    actor_type    text NOT NULL CHECK (actor_type IN ('user', 'device', 'api_key', 'system')),
    actor_id      uuid,
    actor_label   text NOT NULL DEFAULT '',
    event         text NOT NULL,
    resource_type text NOT NULL,
    resource_id   text NOT NULL DEFAULT '',
    resource_label text NOT NULL DEFAULT '',
    details       jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX audit_events_workspace ON audit_events (workspace_id, id DESC);
