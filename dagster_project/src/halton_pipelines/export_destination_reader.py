"""Export destinations, stored in the control plane, the secret access key decrypted only to upload.

The control plane keeps one row per workspace in `export_destinations` (the API's migration 0019), written by an
owner on the exports settings page: the bucket, key prefix, endpoint URL and region of an S3-compatible store,
the access key id, and the secret access key sealed with `halton_meter.secretbox`. The pipelines write each
run's outcome back onto the row (shown on that page) and as an `export.run` audit event. A secret that does not
decrypt is reported for its workspace, never silently skipped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb

from halton_meter.secretbox import SecretBoxError, open_export_secret

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExportDestination:
    workspace_id: UUID
    bucket: str
    prefix: str
    endpoint_url: str
    region: str
    access_key_id: str
    secret_access_key: str = ""
    # Why the stored secret could not be opened (then there is nothing to upload with).
    unreadable: str | None = None

    def key(self, day: date, name: str) -> str:
        """`<prefix>/<workspace_id>/<YYYY-MM-DD>/<name>`: one folder per workspace and day."""
        return "/".join(part for part in (self.prefix, str(self.workspace_id), day.isoformat(), name) if part)


def load_destinations(database_url: str, secret: str) -> list[ExportDestination]:
    """Every workspace's destination, its secret opened (or why it could not be)."""
    with psycopg.connect(database_url) as conn:
        exists = conn.execute("SELECT to_regclass('export_destinations') IS NOT NULL").fetchone()
        if not exists or not exists[0]:
            log.info("the control plane has no export_destinations table yet: nothing to export")
            return []
        rows = conn.execute(
            "SELECT workspace_id, bucket, prefix, endpoint_url, region, access_key_id,"
            " secret_access_key_encrypted FROM export_destinations ORDER BY workspace_id"
        ).fetchall()
    destinations: list[ExportDestination] = []
    for workspace_id, bucket, prefix, endpoint_url, region, key_id, token in rows:
        try:
            opened, unreadable = open_export_secret(secret, token), None
        except SecretBoxError as error:
            opened, unreadable = "", str(error)
        destinations.append(
            ExportDestination(workspace_id, bucket, prefix, endpoint_url, region, key_id, opened, unreadable)
        )
    return destinations


def record_run(
    database_url: str, destination: ExportDestination, day: date, *, objects: int, error: str | None
) -> None:
    """The outcome of exporting `day` to one destination: on its settings page and in the audit log."""
    label = f"s3://{destination.bucket}/{destination.prefix}".rstrip("/")
    details = {"day": day.isoformat(), "objects": objects, "works": error is None}
    if error:
        details["error"] = error
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "UPDATE export_destinations SET last_run_at = now(), last_run_day = %s, last_run_error = %s,"
            " last_run_objects = %s WHERE workspace_id = %s AND bucket = %s",
            (day, error, objects, destination.workspace_id, destination.bucket),
        )
        conn.execute(
            "INSERT INTO audit_events (workspace_id, actor_type, actor_label, event, resource_type, resource_id,"
            " resource_label, details) VALUES (%s, 'system', 'scheduled export', 'export.run',"
            " 'export_destination', %s, %s, %s)",
            (destination.workspace_id, destination.bucket, label, Jsonb(details)),
        )
