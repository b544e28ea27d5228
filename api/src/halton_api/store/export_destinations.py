"""The workspace's scheduled Parquet export destination, as owners set it on the exports settings page: an
S3-compatible bucket, a key prefix, an endpoint and region, and credentials (the secret access key sealed with
the secret box the pipelines open it with, never read back to a page). The pipelines write each run's outcome
onto the same row (halton_pipelines.export_destination_reader)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from halton_api.store import Connection, audit
from halton_api.store.audit import Actor
from halton_meter.secretbox import seal_export_secret

_COLUMNS = (
    "bucket, prefix, endpoint_url, region, access_key_id, created_at, last_run_at, last_run_day,"
    " last_run_error, last_run_objects"
)


def _label(row: dict[str, Any]) -> str:
    return f"s3://{row['bucket']}/{row['prefix']}".rstrip("/")


async def get(conn: Connection, *, workspace_id: UUID) -> dict[str, Any] | None:
    """The workspace's destination and its last run, without the secret."""
    return await (
        await conn.execute(
            f"SELECT {_COLUMNS} FROM export_destinations WHERE workspace_id = %s", (workspace_id,)
        )
    ).fetchone()


async def recent_runs(conn: Connection, *, workspace_id: UUID, limit: int = 10) -> list[dict[str, Any]]:
    """The last runs' outcomes, newest first, from their `export.run` audit events."""
    return await (
        await conn.execute(
            "SELECT created_at, resource_label, details FROM audit_events"
            " WHERE workspace_id = %s AND event = 'export.run' ORDER BY id DESC LIMIT %s",
            (workspace_id, limit),
        )
    ).fetchall()


async def configure(
    conn: Connection, *, workspace_id: UUID, bucket: str, prefix: str, endpoint_url: str, region: str,
    access_key_id: str, secret_access_key: str, secret: bytes, actor: Actor,
) -> dict[str, Any]:  # fmt: skip
    """Store (or replace) the destination; a replaced one's run status goes with it."""
    row = await (
        await conn.execute(
            "INSERT INTO export_destinations (workspace_id, bucket, prefix, endpoint_url, region, access_key_id,"
            " secret_access_key_encrypted, created_by) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (workspace_id) DO UPDATE SET bucket = EXCLUDED.bucket, prefix = EXCLUDED.prefix,"
            " endpoint_url = EXCLUDED.endpoint_url, region = EXCLUDED.region,"
            " access_key_id = EXCLUDED.access_key_id,"
            " secret_access_key_encrypted = EXCLUDED.secret_access_key_encrypted,"
            " created_by = EXCLUDED.created_by, created_at = now(), last_run_at = NULL, last_run_day = NULL,"
            f" last_run_error = NULL, last_run_objects = NULL RETURNING {_COLUMNS}",
            (
                workspace_id, bucket, prefix, endpoint_url, region, access_key_id,
                seal_export_secret(secret, secret_access_key), actor.id if actor.type == "user" else None,
            ),
        )
    ).fetchone()  # fmt: skip
    assert row is not None
    await audit.record(
        conn, workspace_id=workspace_id, actor=actor, event="export.configured",
        resource_type="export_destination", resource_id=row["bucket"], resource_label=_label(row),
        details={"bucket": bucket, "prefix": prefix, "endpoint_url": endpoint_url, "region": region,
                 "access_key_id": access_key_id},
    )  # fmt: skip
    return row


async def remove(conn: Connection, *, workspace_id: UUID, actor: Actor) -> dict[str, Any] | None:
    """Forget the destination (the files already written stay in the bucket); None when there was none."""
    row = await (
        await conn.execute(
            f"DELETE FROM export_destinations WHERE workspace_id = %s RETURNING {_COLUMNS}", (workspace_id,)
        )
    ).fetchone()
    if row is None:
        return None
    await audit.record(
        conn, workspace_id=workspace_id, actor=actor, event="export.removed",
        resource_type="export_destination", resource_id=row["bucket"], resource_label=_label(row),
        details={"bucket": row["bucket"], "prefix": row["prefix"]},
    )  # fmt: skip
    return row
