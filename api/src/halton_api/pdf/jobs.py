"""Report generation as a background job with progress, for the UI to poll ("Laying out page 7…").

A 12-month report renders in about 1.5 to 3 s on two cores, more when the machine is busy: long enough for a
request to look stuck. The page starts a job, polls its progress, then downloads the PDF.

A job lives in PostgreSQL (`store.report_jobs`), so with several API processes the poll and the download may
reach any of them: the process rendering writes its progress as it goes (at most every `flush_every`
seconds), a heartbeat every second, and the finished PDF into the job's row. A running job whose heartbeat
stopped for `silent_after` (its process died or was stopped mid-render) reads as failed.

Per process by design: the slots (`max_running`), which bound what this process's own CPU takes on; with N
processes a cloud renders at most N x `max_running` reports at once, which is what N processes' CPUs can take.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal
from uuid import UUID

from psycopg_pool import AsyncConnectionPool

from halton_api.pdf.render import RenderProgress
from halton_api.store import report_jobs

log = logging.getLogger(__name__)

JobState = Literal["running", "done", "failed"]
HEARTBEAT_SECONDS = 1.0


class TooManyReportJobs(RuntimeError):
    """Every slot is busy; the caller should answer 429 and try again shortly."""


@dataclass
class ReportJob:
    """One report being made; the work updates `stage` and the render progress as it goes."""

    id: str
    workspace_id: UUID
    filename: str
    state: JobState = "running"
    stage: str = "queued"
    render_step: int = 0
    render_steps: int = 0
    pages_laid_out: int = 0
    error: str | None = None
    created_at: datetime | None = None
    finished_at: datetime | None = None

    def on_render_progress(self, progress: RenderProgress) -> None:
        """Pass as `render_pdf(on_progress=…)`; called from the rendering thread (plain assignments only)."""
        self.stage = "rendering"
        self.render_step, self.render_steps = progress.step, progress.total_steps
        self.pages_laid_out = progress.pages_laid_out

    def _progress(self) -> tuple[str, int, int, int]:
        return self.stage, self.render_step, self.render_steps, self.pages_laid_out


class ReportJobs:
    """Starts report jobs in this process; finds any process's jobs."""

    def __init__(
        self,
        pool: AsyncConnectionPool,
        *,
        max_running: int = 4,
        keep_finished: timedelta = timedelta(minutes=15),
        flush_every: float = 0.1,
        silent_after: timedelta = timedelta(seconds=30),
    ) -> None:
        self._pool = pool
        self._slots: set[str] = set()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._max_running = max_running
        self._keep_finished = keep_finished
        self._flush_every = flush_every
        self._silent_after = silent_after

    async def start(
        self, *, workspace_id: UUID, filename: str, work: Callable[[ReportJob], Awaitable[bytes]]
    ) -> ReportJob:
        """Run `work(job)` in the background; it returns the finished PDF's bytes."""
        job = self._new_job(workspace_id, filename)
        try:
            async with self._pool.connection() as conn:
                await report_jobs.forget_old(conn, keep_finished=self._keep_finished)
                await report_jobs.insert(
                    conn, job_id=job.id, workspace_id=workspace_id, filename=filename, stage=job.stage
                )
        except BaseException:
            self._slots.discard(job.id)
            raise
        self._tasks[job.id] = asyncio.create_task(self._run(job, work), name=f"report-job-{job.id}")
        return job

    async def run(
        self, *, workspace_id: UUID, filename: str, work: Callable[[ReportJob], Awaitable[bytes]]
    ) -> bytes:
        """Run `work(job)` in the caller's task, in one of the same slots (the direct `.pdf` answers to
        scripts): a script cannot render more reports at once than the pages can. Nothing is kept to poll;
        errors and cancellation reach the caller as they are."""
        job = self._new_job(workspace_id, filename)
        try:
            return await work(job)
        finally:
            self._slots.discard(job.id)

    def _new_job(self, workspace_id: UUID, filename: str) -> ReportJob:
        """A job holding one of this process's slots (taken before any await: two starts cannot share one)."""
        if len(self._slots) >= self._max_running:
            raise TooManyReportJobs(
                f"{len(self._slots)} reports are being generated already: try again in a moment"
            )
        job = ReportJob(id=secrets.token_urlsafe(16), workspace_id=workspace_id, filename=filename)
        self._slots.add(job.id)
        return job

    async def get(self, job_id: str, *, workspace_id: UUID) -> ReportJob | None:
        """The job (without its PDF), if it exists and belongs to `workspace_id` (an id from another workspace
        finds nothing), whichever process runs it."""
        async with self._pool.connection() as conn:
            row = await report_jobs.get(
                conn, job_id=job_id, workspace_id=workspace_id, keep_finished=self._keep_finished
            )
        if row is None:
            return None
        silent_for = row.pop("silent_for")
        job = ReportJob(**row)
        if job.state == "running" and silent_for > self._silent_after:
            job.state = "failed"
            job.error = "the server generating it stopped before it finished: generate the report again"
        return job

    async def pdf(self, job_id: str, *, workspace_id: UUID) -> bytes | None:
        """The finished job's PDF, or None (not done, gone, or another workspace's)."""
        async with self._pool.connection() as conn:
            return await report_jobs.pdf(
                conn, job_id=job_id, workspace_id=workspace_id, keep_finished=self._keep_finished
            )

    async def aclose(self) -> None:
        """Cancel what is still running (the app's shutdown); each cancelled job is marked failed."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self, job: ReportJob, work: Callable[[ReportJob], Awaitable[bytes]]) -> None:
        follower = asyncio.create_task(self._follow(job), name=f"report-job-{job.id}-progress")
        pdf: bytes | None = None
        try:
            pdf = await work(job)
        except asyncio.CancelledError:
            job.state, job.error = "failed", "cancelled: the server is shutting down"
            raise
        except Exception as exc:
            log.exception("report job %s (%s) failed", job.id, job.filename)
            job.state, job.error = "failed", f"the report could not be generated: {exc}"
        else:
            job.state, job.stage = "done", "done"
        finally:
            follower.cancel()
            await asyncio.gather(follower, return_exceptions=True)
            try:
                async with self._pool.connection() as conn:
                    await report_jobs.finish(conn, job_id=job.id, stage=job.stage, error=job.error, pdf=pdf)
            except Exception:  # the pool is gone or PostgreSQL is down: the heartbeat stops, the job fails
                log.exception("report job %s: could not record its outcome", job.id)
            self._slots.discard(job.id)
            self._tasks.pop(job.id, None)

    async def _follow(self, job: ReportJob) -> None:
        """Write the job's progress when it changes (and a heartbeat) until the work is over."""
        written = job._progress()
        loop = asyncio.get_running_loop()
        beat = loop.time()
        while True:
            await asyncio.sleep(self._flush_every)
            now = job._progress()
            if now == written and loop.time() - beat < HEARTBEAT_SECONDS:
                continue
            try:
                async with self._pool.connection() as conn:
                    await report_jobs.progress(
                        conn, job_id=job.id, stage=now[0], render_step=now[1], render_steps=now[2],
                        pages_laid_out=now[3],
                    )  # fmt: skip
            except Exception:  # a missed progress write is shown late, not lost: the next one carries it
                log.warning("report job %s: could not write its progress", job.id, exc_info=True)
                continue
            written, beat = now, loop.time()
