"""Reports this workspace issued: the `report.signed` audit events, found by the SHA-256 of the bytes served.

`halton_api.pdf.signing.sign_report` writes one such event for every signed PDF; this module only reads them,
to answer "were these exact bytes issued here?" (`halton_api.pdf.verification`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from halton_api.store import Connection

EVENT = "report.signed"


@dataclass(frozen=True)
class IssuedReport:
    sha256: str
    issued_at: datetime
    # Who asked for it: a member's email, or an API key's name and prefix.
    issued_by: str
    # The report's title and period, as the audit log shows it.
    label: str
    details: dict[str, Any]


async def find_issued_report(conn: Connection, *, workspace_id: UUID, sha256: str) -> IssuedReport | None:
    """The first issue of the document whose SHA-256 (lowercase hex) is `sha256`, or None."""
    row = await (
        await conn.execute(
            "SELECT created_at, actor_label, resource_label, details FROM audit_events"
            " WHERE workspace_id = %s AND event = %s AND resource_id = %s ORDER BY id LIMIT 1",
            (workspace_id, EVENT, sha256),
        )
    ).fetchone()
    if row is None:
        return None
    return IssuedReport(
        sha256=sha256,
        issued_at=row["created_at"],
        issued_by=row["actor_label"],
        label=row["resource_label"],
        details=row["details"],
    )
