-- Each workspace's key for signing its PDF reports (halton_api.pdf.signing), made on first use.
-- The private key is PKCS#8 PEM encrypted with a Fernet key derived from HALTON_SECRET_KEY and the purpose
-- label "pdf-signing-key" (halton_api.secretbox); the self-signed certificate is public and kept in clear,
-- so a signed report can be checked without decrypting anything.
-- A retired key stays: reports it signed must still verify. At most one live key per workspace.
CREATE TABLE signing_keys (
    id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    workspace_id          uuid NOT NULL REFERENCES workspaces ON DELETE CASCADE,
    private_key_encrypted bytea NOT NULL,
    certificate_pem       text NOT NULL,
    -- sha256 of the certificate's DER encoding, lowercase hex: what readers show as the certificate's fingerprint.
    fingerprint_sha256    text NOT NULL UNIQUE CHECK (fingerprint_sha256 ~ '^[0-9a-f]{64}$'),
    created_at            timestamptz NOT NULL DEFAULT now(),
    retired_at            timestamptz
);
CREATE UNIQUE INDEX signing_keys_live_key ON signing_keys (workspace_id) WHERE retired_at IS NULL;
