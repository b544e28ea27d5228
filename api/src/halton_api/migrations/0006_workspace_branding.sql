-- A workspace's branding for its PDF reports: the logo drawn in every report's running header.
-- Only PNG and JPEG are kept (checked by their magic bytes before they get here): an SVG can carry scripts
-- and external references, and a raster image cannot. 512 KB is plenty for a logo printed 7 mm high.
-- No row means no logo; removing the logo deletes the row (the audit log keeps who did what, and when).
CREATE TABLE workspace_branding (
    workspace_id      uuid PRIMARY KEY REFERENCES workspaces ON DELETE CASCADE,
    logo              bytea NOT NULL CHECK (octet_length(logo) BETWEEN 1 AND 524288),
    logo_content_type text NOT NULL CHECK (logo_content_type IN ('image/png', 'image/jpeg')),
    logo_sha256       text NOT NULL CHECK (logo_sha256 ~ '^[0-9a-f]{64}$'),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    updated_by        uuid REFERENCES users ON DELETE SET NULL
);
