"""Report jobs: a real render in the background, its progress visible while it runs (from PostgreSQL, so to any
API process), scoped to a workspace."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from halton_api import postgres
from halton_api.pdf.jobs import ReportJob, ReportJobs, TooManyReportJobs
from halton_api.pdf.render import RenderProgress, render_pdf, render_pdf_sync
from halton_api.store import report_jobs
from halton_api.testing.factories import make_user, make_workspace
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


@pytest.fixture
def control_plane(postgres_url: str) -> str:
    postgres.migrate(postgres_url)
    return postgres_url


@pytest.fixture
def workspace_id(control_plane: str) -> uuid.UUID:
    return make_workspace(control_plane, owner=make_user(control_plane)).id


@asynccontextmanager
async def opened(url: str, **options) -> AsyncIterator[ReportJobs]:
    """Report jobs over an open pool; like the app's shutdown, running jobs are cancelled before it closes."""
    pool = postgres.open_pool(url, min_size=1, max_size=4)
    await pool.open()
    jobs = ReportJobs(pool, **options)
    try:
        yield jobs
    finally:
        await jobs.aclose()
        await pool.close()


async def until_finished(jobs: ReportJobs, job: ReportJob) -> ReportJob:
    while (current := await jobs.get(job.id, workspace_id=job.workspace_id)) and current.state == "running":
        await asyncio.sleep(0.01)
    assert current is not None
    return current


def test_a_job_shows_progress_then_its_pdf(
    sample_report: Callable[..., str], control_plane: str, workspace_id: uuid.UUID
) -> None:
    """Started by one process, polled and downloaded by another (two pools: what two API processes hold)."""
    stranger = make_workspace(control_plane, owner=make_user(control_plane)).id
    html = sample_report(rows=32, sections=8)

    async def main() -> tuple[ReportJob, list[tuple[str, int]], bytes | None, ReportJob | None, bytes | None]:
        async with opened(control_plane) as starter, opened(control_plane) as other:

            async def work(job: ReportJob) -> bytes:
                return await render_pdf(html, on_progress=job.on_render_progress)

            job = await starter.start(workspace_id=workspace_id, filename="report.pdf", work=work)
            polled = []
            while (
                current := await other.get(job.id, workspace_id=workspace_id)
            ) and current.state == "running":
                polled.append((current.stage, current.pages_laid_out))
                await asyncio.sleep(0.02)
            assert current is not None
            return (
                current,
                polled,
                await other.pdf(job.id, workspace_id=workspace_id),
                await other.get(job.id, workspace_id=stranger),
                await other.pdf(job.id, workspace_id=stranger),
            )

    job, polled, pdf, seen_by_stranger, stranger_pdf = asyncio.run(main())
    assert job.state == "done" and job.error is None
    assert pdf is not None and page_count(pdf) == job.pages_laid_out >= 8
    assert job.finished_at is not None
    # The poller saw the layout advance page by page.
    laid_out = [pages for stage, pages in polled if stage == "rendering"]
    assert len(set(laid_out)) >= 3, polled
    assert seen_by_stranger is None and stranger_pdf is None


def test_a_failing_job_says_why_and_slots_are_limited(control_plane: str, workspace_id: uuid.UUID) -> None:
    async def main() -> tuple[ReportJob, bytes | None]:
        async with opened(control_plane, max_running=1) as jobs:
            release = asyncio.Event()

            async def broken(job: ReportJob) -> bytes:
                await release.wait()
                raise ValueError("no data for that period")

            job = await jobs.start(workspace_id=workspace_id, filename="a.pdf", work=broken)
            with pytest.raises(TooManyReportJobs):
                await jobs.start(workspace_id=workspace_id, filename="b.pdf", work=broken)
            release.set()
            return await until_finished(jobs, job), await jobs.pdf(job.id, workspace_id=workspace_id)

    job, pdf = asyncio.run(main())
    assert job.state == "failed" and pdf is None
    assert job.error == "the report could not be generated: no data for that period"


def test_a_job_stopped_with_its_process_reads_as_failed_everywhere(
    control_plane: str, workspace_id: uuid.UUID
) -> None:
    """Shut down mid-render, a process records the job as cancelled; killed, it writes nothing and its
    heartbeat stops: either way another process's poll says the job failed, never "running" for ever."""

    async def main() -> tuple[ReportJob | None, ReportJob | None]:
        async with opened(control_plane) as other:
            async with opened(control_plane) as stopping:
                started = asyncio.Event()

                async def hangs(job: ReportJob) -> bytes:
                    started.set()
                    await asyncio.Event().wait()
                    raise AssertionError("unreachable")

                shut_down = await stopping.start(workspace_id=workspace_id, filename="a.pdf", work=hangs)
                await started.wait()
            # A job left by a process that was killed: running, its last heartbeat a minute old.
            async with other._pool.connection() as conn:
                await report_jobs.insert(
                    conn, job_id="killed", workspace_id=workspace_id, filename="b.pdf", stage="rendering"
                )
                await conn.execute(
                    "UPDATE report_jobs SET heartbeat_at = now() - interval '1 minute' WHERE id = 'killed'"
                )
            return (
                await other.get(shut_down.id, workspace_id=workspace_id),
                await other.get("killed", workspace_id=workspace_id),
            )

    shut_down, killed = asyncio.run(main())
    assert shut_down is not None and shut_down.state == "failed"
    assert shut_down.error == "cancelled: the server is shutting down"
    assert killed is not None and killed.state == "failed"
    assert killed.error == "the server generating it stopped before it finished: generate the report again"


def test_a_direct_render_takes_a_slot_and_keeps_nothing(control_plane: str, workspace_id: uuid.UUID) -> None:
    """The .pdf answers to scripts run in the caller's request, in the same slots as the jobs."""

    async def main() -> None:
        async with opened(control_plane, max_running=1) as jobs:
            release = asyncio.Event()

            async def waits(job: ReportJob) -> bytes:
                await release.wait()
                return b"%PDF-1.7 background"

            background = await jobs.start(workspace_id=workspace_id, filename="a.pdf", work=waits)
            with pytest.raises(TooManyReportJobs):
                await jobs.run(workspace_id=workspace_id, filename="b.pdf", work=waits)
            release.set()
            assert (await until_finished(jobs, background)).state == "done"

            async def direct(job: ReportJob) -> bytes:
                with pytest.raises(TooManyReportJobs):  # this one holds the only slot while it runs
                    await jobs.start(workspace_id=workspace_id, filename="c.pdf", work=waits)
                return b"%PDF-1.7 direct"

            assert (
                await jobs.run(workspace_id=workspace_id, filename="b.pdf", work=direct) == b"%PDF-1.7 direct"
            )

            async def broken(job: ReportJob) -> bytes:
                raise LookupError("no such project")

            with pytest.raises(LookupError, match="no such project"):  # the caller sees the error itself
                await jobs.run(workspace_id=workspace_id, filename="d.pdf", work=broken)
            after = await jobs.start(
                workspace_id=workspace_id, filename="e.pdf", work=waits
            )  # the slot is free
            assert (await until_finished(jobs, after)).state == "done"
            assert await jobs.pdf(after.id, workspace_id=workspace_id) == b"%PDF-1.7 background"
            # A direct render kept nothing to poll: the only rows are the two started jobs.
            async with jobs._pool.connection() as conn:
                rows = await (
                    await conn.execute("SELECT filename FROM report_jobs ORDER BY filename")
                ).fetchall()
            assert [r["filename"] for r in rows] == ["a.pdf", "e.pdf"]

    asyncio.run(main())
