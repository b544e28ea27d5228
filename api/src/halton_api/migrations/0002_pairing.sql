-- One-time pairing codes: a meter asks for one, a signed-in member approves or denies it in the browser,
-- and the meter's long-poll collects the device token exactly once.
-- The code (8 Crockford-base32 characters) and the meter's poll secret are stored as sha256 digests only.
-- The device token is minted at approval (the device row and its audit event exist from then on) and kept
-- Fernet-encrypted until the poll collects it; collecting it wipes the ciphertext.
CREATE TABLE pairing_codes (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    code_hash        bytea NOT NULL UNIQUE,
    poll_secret_hash bytea NOT NULL UNIQUE,
    machine_id       text NOT NULL,
    hostname         text NOT NULL DEFAULT '',
    meter_version    text NOT NULL DEFAULT '',
    requested_from   text NOT NULL DEFAULT '',
    created_at       timestamptz NOT NULL DEFAULT now(),
    expires_at       timestamptz NOT NULL,
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'approved', 'denied', 'consumed')),
    decided_by       uuid REFERENCES users ON DELETE SET NULL,
    decided_at       timestamptz,
    workspace_id     uuid REFERENCES workspaces ON DELETE CASCADE,
    device_id        uuid REFERENCES devices ON DELETE CASCADE,
    token_ciphertext bytea
);

CREATE INDEX pairing_codes_expires_at ON pairing_codes (expires_at);
