-- Budget alerts (issue 24): the thresholds of each budget, where alerts go, each alert raised (once per budget,
-- month, kind and threshold) and each delivery of it with its status and retries.

-- Percentages of the month's budget that raise an alert, and whether a forecast breach does.
ALTER TABLE budgets ADD COLUMN alert_thresholds integer[] NOT NULL DEFAULT '{50,80,100}'
    CHECK (alert_thresholds <@ ARRAY[1,2,3,4,5,6,7,8,9,10,15,20,25,30,40,50,60,70,75,80,85,90,95,100,110,120,150,200]);
ALTER TABLE budgets ADD COLUMN forecast_alert boolean NOT NULL DEFAULT true;

-- Where a workspace's alerts go: a webhook (Slack-compatible JSON, signed with HMAC-SHA256 of the signing
-- secret) and an SMTP server. Secrets are sealed with halton_meter.secretbox (purpose "alert-channel").
CREATE TABLE alert_channels (
    workspace_id              uuid PRIMARY KEY REFERENCES workspaces ON DELETE CASCADE,
    webhook_url               text,
    webhook_secret_encrypted  bytea,
    smtp_host                 text,
    smtp_port                 integer CHECK (smtp_port BETWEEN 1 AND 65535),
    smtp_starttls             boolean NOT NULL DEFAULT true,
    smtp_username             text,
    smtp_password_encrypted   bytea,
    smtp_from                 text,
    smtp_to                   text[] NOT NULL DEFAULT '{}',
    updated_at                timestamptz NOT NULL DEFAULT now()
);

-- One row per alert raised: the unique key makes each threshold fire once per budget and month, however
-- many times the evaluation runs (after each marts build and hourly).
CREATE TABLE budget_alerts (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    workspace_id   uuid NOT NULL REFERENCES workspaces ON DELETE CASCADE,
    budget_id      uuid NOT NULL REFERENCES budgets ON DELETE CASCADE,
    period         date NOT NULL,
    kind           text NOT NULL CHECK (kind IN ('threshold', 'forecast')),
    threshold_pct  integer NOT NULL DEFAULT 0,
    scope_label    text NOT NULL,
    budget_usd     numeric(18, 2) NOT NULL,
    spend_usd      numeric(24, 9) NOT NULL,
    projected_usd  numeric(24, 9),
    breach_day     date,
    message        text NOT NULL,
    raised_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (budget_id, period, kind, threshold_pct)
);
CREATE INDEX budget_alerts_workspace ON budget_alerts (workspace_id, raised_at DESC);

-- Each alert's delivery on each channel: pending until delivered, retried with backoff, failed after the last try.
CREATE TABLE alert_deliveries (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    alert_id         uuid NOT NULL REFERENCES budget_alerts ON DELETE CASCADE,
    channel          text NOT NULL CHECK (channel IN ('webhook', 'email')),
    status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_error       text,
    delivered_at     timestamptz,
    UNIQUE (alert_id, channel)
);
CREATE INDEX alert_deliveries_due ON alert_deliveries (next_attempt_at) WHERE status = 'pending';
