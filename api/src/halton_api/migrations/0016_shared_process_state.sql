-- Report jobs (the "Generate PDF" button's background work), shared by every API process: the progress page
-- and the download may reach a process other than the one rendering. The rendering process writes its
-- progress as it goes and `heartbeat_at` every second; a running job whose heartbeat stopped (its process
-- died) reads as failed. The finished PDF is kept in the row (a few hundred kB, for `keep_finished`, 15
-- minutes): no API host needs a disk shared with the others. Times are PostgreSQL's clock (`now()`), one
-- clock for every host. Rows finished longer ago than that are deleted as new jobs start.
CREATE TABLE report_jobs (
    id             text PRIMARY KEY,
    workspace_id   uuid NOT NULL REFERENCES workspaces ON DELETE CASCADE,
    filename       text NOT NULL,
    state          text NOT NULL CHECK (state IN ('running', 'done', 'failed')),
    stage          text NOT NULL,
    render_step    integer NOT NULL DEFAULT 0,
    render_steps   integer NOT NULL DEFAULT 0,
    pages_laid_out integer NOT NULL DEFAULT 0,
    error          text,
    pdf            bytea,
    created_at     timestamptz NOT NULL DEFAULT now(),
    heartbeat_at   timestamptz NOT NULL DEFAULT now(),
    finished_at    timestamptz,
    CHECK ((state = 'done') = (pdf IS NOT NULL)),
    CHECK ((state = 'running') = (finished_at IS NULL))
);
CREATE INDEX report_jobs_finished_at ON report_jobs (finished_at);

-- Token buckets for bad credentials (unknown or revoked sync tokens and API keys, wrong passwords), per client
-- address and per presented credential (`ratelimit.SharedBucketLimiter`): only failures write here, so a
-- valid credential costs nothing, and every API process counts the same failures (N processes do not allow
-- N bursts). `key` is the credential kind and the address or a digest prefix of the credential, never a
-- secret. A bucket untouched long enough to be full again is the same as no row, and is deleted.
CREATE TABLE credential_failures (
    key        text PRIMARY KEY,
    tokens     double precision NOT NULL CHECK (tokens >= 0),
    updated_at timestamptz NOT NULL
);
CREATE INDEX credential_failures_updated_at ON credential_failures (updated_at);
