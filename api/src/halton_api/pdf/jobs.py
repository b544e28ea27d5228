"""Report generation as a background job with progress, for the UI to poll ("Laying out page 7…").

A 12-month report renders in about 1.5 to 3 s on two cores, more when the machine is busy: long enough for a
request to look stuck. The page starts a job, polls its progress, then downloads the PDF.

The registry lives in one process's memory: a job is gone after a restart, and with several API workers
the poll must reach the worker that started it (sticky sessions), or generation must stay synchronous.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal
from uuid import UUID

from halton_api.pdf.render import RenderProgress

log = logging.getLogger(__name__)

JobState = Literal["running", "done", "failed"]


class TooManyReportJobs(RuntimeError):
    """Every slot is busy; the caller should answer 429 and try again shortly."""


@dataclass
class ReportJob:
    """One report being made; the work updates `stage` and the render progress as it goes."""

    id: str
    workspace_id: UUID
    filename: str
    created_at: datetime
    state: JobState = "running"
    stage: str = "queued"
    render_step: int = 0
    render_steps: int = 0
    pages_laid_out: int = 0
    error: str | None = None
    finished_at: datetime | None = None
    pdf: bytes | None = field(default=None, repr=False)

    def on_render_progress(self, progress: RenderProgress) -> None:
        """Pass as `render_pdf(on_progress=…)`; called from the rendering thread (plain assignments only)."""
        self.stage = "rendering"
        self.render_step, self.render_steps = progress.step, progress.total_steps
        self.pages_laid_out = progress.pages_laid_out


class ReportJobs:
    """The running and recently finished report jobs of this process."""

    def __init__(self, *, max_running: int = 4, keep_finished: timedelta = timedelta(minutes=15)) -> None:
        self._jobs: dict[str, ReportJob] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._max_running = max_running
        self._keep_finished = keep_finished

    def start(
        self, *, workspace_id: UUID, filename: str, work: Callable[[ReportJob], Awaitable[bytes]]
    ) -> ReportJob:
        """Run `work(job)` in the background; it returns the finished PDF's bytes."""
        job = self._new_job(workspace_id, filename)
        self._jobs[job.id] = job
        self._tasks[job.id] = asyncio.create_task(self._run(job, work), name=f"report-job-{job.id}")
        return job

    async def run(
        self, *, workspace_id: UUID, filename: str, work: Callable[[ReportJob], Awaitable[bytes]]
    ) -> bytes:
        """Run `work(job)` in the caller's task, in one of the same slots (the direct `.pdf` answers to
        scripts): a script cannot render more reports at once than the pages can. Nothing is kept to poll;
        errors and cancellation reach the caller as they are."""
        job = self._new_job(workspace_id, filename)
        task = asyncio.current_task()
        assert task is not None
        self._tasks[job.id] = task
        try:
            return await work(job)
        finally:
            self._tasks.pop(job.id, None)

    def _new_job(self, workspace_id: UUID, filename: str) -> ReportJob:
        self._forget_old()
        if len(self._tasks) >= self._max_running:
            raise TooManyReportJobs(
                f"{len(self._tasks)} reports are being generated already: try again in a moment"
            )
        return ReportJob(
            id=secrets.token_urlsafe(16),
            workspace_id=workspace_id,
            filename=filename,
            created_at=datetime.now(UTC),
        )

    def get(self, job_id: str, *, workspace_id: UUID) -> ReportJob | None:
        """The job, if it exists and belongs to `workspace_id` (an id from another workspace finds nothing)."""
        self._forget_old()
        job = self._jobs.get(job_id)
        return job if job is not None and job.workspace_id == workspace_id else None

    async def aclose(self) -> None:
        """Cancel what is still running (the app's shutdown)."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self, job: ReportJob, work: Callable[[ReportJob], Awaitable[bytes]]) -> None:
        try:
            pdf = await work(job)
        except asyncio.CancelledError:
            job.state, job.error = "failed", "cancelled: the server is shutting down"
            raise
        except Exception as exc:
            log.exception("report job %s (%s) failed", job.id, job.filename)
            job.state, job.error = "failed", f"the report could not be generated: {exc}"
        else:
            job.pdf, job.state, job.stage = pdf, "done", "done"
        finally:
            job.finished_at = datetime.now(UTC)
            self._tasks.pop(job.id, None)

    def _forget_old(self) -> None:
        cutoff = datetime.now(UTC) - self._keep_finished
        for job_id in [
            j.id for j in self._jobs.values() if j.finished_at is not None and j.finished_at < cutoff
        ]:
            del self._jobs[job_id]
