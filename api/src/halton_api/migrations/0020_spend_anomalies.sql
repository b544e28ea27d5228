-- Runaway spend (issue 24): each anomaly the pipelines raise from marts.spend_anomalies (once per anomaly key:
-- kind, subject and day), with its evidence, open until someone closes it. Anomalies are sent through the same
-- alert channels as budget alerts: a delivery belongs to a budget alert or to an anomaly.
CREATE TABLE spend_anomalies (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    workspace_id  uuid NOT NULL REFERENCES workspaces ON DELETE CASCADE,
    anomaly_key   text NOT NULL,
    kind          text NOT NULL CHECK (kind IN ('loop', 'spike')),
    subject_kind  text NOT NULL CHECK (subject_kind IN ('prompt', 'project', 'device')),
    subject       text NOT NULL,
    message       text NOT NULL,
    evidence      jsonb NOT NULL,
    status        text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
    raised_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (workspace_id, anomaly_key)
);
CREATE INDEX spend_anomalies_open ON spend_anomalies (workspace_id, raised_at DESC) WHERE status = 'open';

ALTER TABLE alert_deliveries ALTER COLUMN alert_id DROP NOT NULL;
ALTER TABLE alert_deliveries ADD COLUMN anomaly_id uuid REFERENCES spend_anomalies ON DELETE CASCADE;
ALTER TABLE alert_deliveries ADD CONSTRAINT alert_deliveries_one_subject CHECK (num_nonnulls(alert_id, anomaly_id) = 1);
ALTER TABLE alert_deliveries ADD CONSTRAINT alert_deliveries_anomaly_channel UNIQUE (anomaly_id, channel);
