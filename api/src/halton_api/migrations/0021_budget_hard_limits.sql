-- Opt-in hard stop at the meter (issue 24): an owner marks a project's budget as a limit, and paired meters
-- then refuse that project's calls (an HTTP 429 shaped like the provider's own) once its month-to-date spend
-- reaches the budget. Off by default.
ALTER TABLE budgets ADD COLUMN hard_limit boolean NOT NULL DEFAULT false;

-- Each block and each override a meter reported, once (the meter resends until it gets a 2xx): the audit
-- log gets one event per row inserted here.
CREATE TABLE meter_limit_events (
    event_uid     uuid PRIMARY KEY,
    workspace_id  uuid NOT NULL REFERENCES workspaces ON DELETE CASCADE,
    device_id     uuid NOT NULL REFERENCES devices ON DELETE CASCADE,
    kind          text NOT NULL CHECK (kind IN ('blocked', 'override')),
    via           text CHECK (via IN ('header', 'command')),
    project       text NOT NULL,
    provider      text NOT NULL,
    model         text,
    occurred_at   timestamptz NOT NULL,
    budget_usd    numeric(18, 2) NOT NULL,
    spend_usd     numeric(24, 9) NOT NULL,
    received_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX meter_limit_events_workspace ON meter_limit_events (workspace_id, occurred_at DESC);
