"""Report jobs in PostgreSQL (migration 0016), so every API process sees every job: its progress, its
outcome and its PDF. The job's life is told in `halton_api.pdf.jobs`; these are its reads and writes.

Every time is PostgreSQL's `now()`: the processes that write a job and read it may run on different hosts.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID

from halton_api.store import Connection


async def insert(conn: Connection, *, job_id: str, workspace_id: UUID, filename: str, stage: str) -> None:
    await conn.execute(
        "INSERT INTO report_jobs (id, workspace_id, filename, state, stage) VALUES (%s, %s, %s, 'running', %s)",
        (job_id, workspace_id, filename, stage),
    )


async def progress(conn: Connection, *, job_id: str, stage: str, render_step: int, render_steps: int,
                   pages_laid_out: int) -> None:  # fmt: skip
    """What the rendering process has got to, and its heartbeat."""
    await conn.execute(
        "UPDATE report_jobs SET stage = %s, render_step = %s, render_steps = %s, pages_laid_out = %s,"
        " heartbeat_at = now() WHERE id = %s AND state = 'running'",
        (stage, render_step, render_steps, pages_laid_out, job_id),
    )


async def finish(conn: Connection, *, job_id: str, stage: str, error: str | None, pdf: bytes | None) -> None:
    """Done (with `pdf`) or failed (with `error`)."""
    await conn.execute(
        "UPDATE report_jobs SET state = %s, stage = %s, error = %s, pdf = %s, heartbeat_at = now(),"
        " finished_at = now() WHERE id = %s",
        ("done" if pdf is not None else "failed", stage, error, pdf, job_id),
    )


async def get(
    conn: Connection, *, job_id: str, workspace_id: UUID, keep_finished: timedelta
) -> dict[str, Any] | None:
    """The job without its PDF, if it belongs to `workspace_id` and finished less than `keep_finished` ago;
    `silent_for`: how long since the rendering process last wrote to it."""
    return await (
        await conn.execute(
            "SELECT id, workspace_id, filename, state, stage, render_step, render_steps, pages_laid_out, error,"
            " created_at, finished_at, now() - heartbeat_at AS silent_for FROM report_jobs"
            " WHERE id = %s AND workspace_id = %s AND (finished_at IS NULL OR finished_at > now() - %s)",
            (job_id, workspace_id, keep_finished),
        )
    ).fetchone()


async def pdf(conn: Connection, *, job_id: str, workspace_id: UUID, keep_finished: timedelta) -> bytes | None:
    row = await (
        await conn.execute(
            "SELECT pdf FROM report_jobs WHERE id = %s AND workspace_id = %s AND state = 'done'"
            " AND finished_at > now() - %s",
            (job_id, workspace_id, keep_finished),
        )
    ).fetchone()
    return row["pdf"] if row else None


async def forget_old(conn: Connection, *, keep_finished: timedelta) -> None:
    """Delete jobs finished (or silent, their process gone) longer than `keep_finished` ago."""
    await conn.execute(
        "DELETE FROM report_jobs WHERE finished_at < now() - %(keep)s"
        " OR (finished_at IS NULL AND heartbeat_at < now() - %(keep)s)",
        {"keep": keep_finished},
    )
