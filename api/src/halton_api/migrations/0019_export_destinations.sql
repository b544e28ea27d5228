-- Scheduled Parquet exports (halton_pipelines.defs.exports): one S3-compatible destination per workspace, set by
-- an owner on the exports settings page. The secret access key is sealed with halton_meter.secretbox
-- (purpose "export-secret-access-key"); the pipelines open it to upload and write each run's outcome back here.
CREATE TABLE export_destinations (
    workspace_id                uuid PRIMARY KEY REFERENCES workspaces ON DELETE CASCADE,
    bucket                      text NOT NULL,
    prefix                      text NOT NULL DEFAULT '',
    endpoint_url                text NOT NULL DEFAULT '',
    region                      text NOT NULL DEFAULT '',
    access_key_id               text NOT NULL,
    secret_access_key_encrypted bytea NOT NULL,
    created_by                  uuid REFERENCES users ON DELETE SET NULL,
    created_at                  timestamptz NOT NULL DEFAULT now(),
    last_run_at                 timestamptz,
    last_run_day                date,
    last_run_error              text,
    last_run_objects            integer
);
