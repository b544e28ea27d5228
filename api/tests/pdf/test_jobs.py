"""Report jobs: a real render in the background, its progress visible while it runs, scoped to a workspace."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import pytest

from halton_api.pdf.jobs import ReportJob, ReportJobs, TooManyReportJobs
from halton_api.pdf.render import RenderProgress, render_pdf, render_pdf_sync
from halton_api.testing.pdf import page_count


def test_progress_follows_the_render_step_by_step(sample_report: Callable[..., str]) -> None:
    seen: list[RenderProgress] = []
    pdf = render_pdf_sync(sample_report(rows=100), on_progress=seen.append)
    steps = [p.step for p in seen]
    assert steps == sorted(steps) and steps[0] == 1 and steps[-1] == 7
    assert max(p.pages_laid_out for p in seen) == page_count(pdf)
    # Nothing is left listening once the render is over.
    render_pdf_sync("<p>later</p>")
    assert seen[-1].step == 7 and len([p for p in seen if p.step == 1]) == 1


def test_a_job_shows_progress_then_its_pdf(sample_report: Callable[..., str]) -> None:
    workspace_id, stranger = uuid.uuid4(), uuid.uuid4()
    html = sample_report(rows=32, sections=8)

    async def main() -> tuple[ReportJob, list[tuple[str, int]], ReportJob | None]:
        jobs = ReportJobs()

        async def work(job: ReportJob) -> bytes:
            return await render_pdf(html, on_progress=job.on_render_progress)

        job = jobs.start(workspace_id=workspace_id, filename="report.pdf", work=work)
        polled = []
        while (current := jobs.get(job.id, workspace_id=workspace_id)) and current.state == "running":
            polled.append((current.stage, current.pages_laid_out))
            await asyncio.sleep(0.02)
        return job, polled, jobs.get(job.id, workspace_id=stranger)

    job, polled, seen_by_stranger = asyncio.run(main())
    assert job.state == "done" and job.error is None
    assert job.pdf is not None and page_count(job.pdf) == job.pages_laid_out >= 8
    assert job.finished_at is not None
    # The poller saw the layout advance page by page.
    laid_out = [pages for stage, pages in polled if stage == "rendering"]
    assert len(set(laid_out)) >= 3, polled
    assert seen_by_stranger is None


def test_a_failing_job_says_why_and_slots_are_limited() -> None:
    workspace_id = uuid.uuid4()

    async def main() -> ReportJob:
        jobs = ReportJobs(max_running=1)
        release = asyncio.Event()

        async def broken(job: ReportJob) -> bytes:
            await release.wait()
            raise ValueError("no data for that period")

        job = jobs.start(workspace_id=workspace_id, filename="a.pdf", work=broken)
        with pytest.raises(TooManyReportJobs):
            jobs.start(workspace_id=workspace_id, filename="b.pdf", work=broken)
        release.set()
        while job.state == "running":
            await asyncio.sleep(0.01)
        await jobs.aclose()
        return job

    job = asyncio.run(main())
    assert job.state == "failed" and job.pdf is None
    assert job.error == "the report could not be generated: no data for that period"


def test_a_direct_render_takes_a_slot_and_keeps_nothing() -> None:
    """The .pdf answers to scripts run in the caller's request, in the same slots as the jobs."""
    workspace_id = uuid.uuid4()

    async def main() -> None:
        jobs = ReportJobs(max_running=1)
        release = asyncio.Event()

        async def waits(job: ReportJob) -> bytes:
            await release.wait()
            return b"%PDF-1.7 background"

        background = jobs.start(workspace_id=workspace_id, filename="a.pdf", work=waits)
        with pytest.raises(TooManyReportJobs):
            await jobs.run(workspace_id=workspace_id, filename="b.pdf", work=waits)
        release.set()
        while background.state == "running":
            await asyncio.sleep(0.01)

        async def direct(job: ReportJob) -> bytes:
            with pytest.raises(TooManyReportJobs):  # this one holds the only slot while it runs
                jobs.start(workspace_id=workspace_id, filename="c.pdf", work=waits)
            return b"%PDF-1.7 direct"

        assert await jobs.run(workspace_id=workspace_id, filename="b.pdf", work=direct) == b"%PDF-1.7 direct"

        async def broken(job: ReportJob) -> bytes:
            raise LookupError("no such project")

        with pytest.raises(LookupError, match="no such project"):  # the caller sees the error itself
            await jobs.run(workspace_id=workspace_id, filename="d.pdf", work=broken)
        after = jobs.start(workspace_id=workspace_id, filename="e.pdf", work=waits)  # the slot is free again
        assert jobs.get(after.id, workspace_id=workspace_id) is after
        await jobs.aclose()

    asyncio.run(main())
