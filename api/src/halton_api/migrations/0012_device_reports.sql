-- The last state each meter reported about its own sync (POST /v1/daemon/report: after its sync passes, and
-- as a heartbeat while idle or paused), so the overview's sync banner shows what the meter knows instead of
-- guessing from the time of its last batch. One row per device, overwritten by each report. `state` is the
-- meter's own (ACTIVE, DEGRADED, PAUSED, or NOT-CONFIGURED once it disconnected itself); `paused_reason` is
-- set exactly when it is PAUSED.
CREATE TABLE device_reports (
    device_id     uuid PRIMARY KEY REFERENCES devices ON DELETE CASCADE,
    state         text NOT NULL CHECK (state IN ('ACTIVE', 'DEGRADED', 'PAUSED', 'NOT-CONFIGURED')),
    paused_reason text CHECK (paused_reason IN ('paused_manual', 'paused_unauthorised', 'paused_forbidden')),
    unsynced_rows bigint NOT NULL CHECK (unsynced_rows >= 0),
    meter_version text NOT NULL DEFAULT '',
    reported_at   timestamptz NOT NULL DEFAULT now(),
    CHECK ((state = 'PAUSED') = (paused_reason IS NOT NULL))
);
