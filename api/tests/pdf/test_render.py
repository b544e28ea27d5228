"""Rendering reports with the real WeasyPrint, read back with poppler: pages, text, fonts, pixels."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from halton_api.pdf.render import render_pdf, render_pdf_sync
from halton_api.testing.pdf import page_count, pdf_fonts, pdf_pages_png, pdf_pages_text, pdf_text

HEADER = re.compile(r"Day\s+Request ID\s+Project\s+Model\s+Tokens\s+Cost")
CHART_BLUE = (0x2F, 0x6F, 0x9F)


def _pixels_near(image: Image.Image, colour: tuple[int, int, int], tolerance: int = 8) -> int:
    counts = image.convert("RGB").getcolors(maxcolors=1 << 24) or []
    return sum(n for n, c in counts if all(abs(a - b) <= tolerance for a, b in zip(c, colour, strict=True)))


def _has_colour(png: Path, colour: tuple[int, int, int], *, at_least: int) -> bool:
    return _pixels_near(Image.open(png), colour) >= at_least


@pytest.fixture(scope="module")
def long_report(sample_report: Callable[..., str]) -> bytes:
    return render_pdf_sync(sample_report(rows=120))


def test_a_long_table_spans_pages_with_its_header_and_whole_rows(
    long_report: bytes, artifacts_dir: Path
) -> None:
    pngs = pdf_pages_png(long_report, artifacts_dir / "pdf-render", prefix="long-report")
    pages = pdf_pages_text(long_report)
    total = page_count(long_report)
    assert total >= 3
    assert len(pages) == len(pngs) == total

    for number, text in enumerate(pages, start=1):
        assert f"Page {number} of {total}" in text, f"page {number} has no 'Page n of N' footer"
        assert "Acme Robotics" in text, f"page {number} has no running header"
        assert "haltonmeter.com/docs/concepts/pricing" in text, f"page {number} has no methodology footer"
        if "req_" in text:
            assert HEADER.search(text), f"page {number} continues the table without its header row"

    # Each row sits whole on one line of one page: no row is cut in two at a page break.
    for n in range(120):
        rid = f"req_{n:05d}_sample"
        holders = [i for i, text in enumerate(pages) if rid in text]
        assert len(holders) == 1, f"{rid} appears on pages {holders}"
        (line,) = [line for line in pages[holders[0]].splitlines() if rid in line]
        assert re.search(
            rf"2026-05-\d\d\s+{rid}\s+acme/project-\d\s+claude-sonnet-4-5\s+[\d,]+\s+\$[\d.]+$", line.strip()
        ), line


def test_fonts_are_embedded(long_report: bytes) -> None:
    fonts = pdf_fonts(long_report)
    assert fonts, "the document uses no fonts"
    assert all(f.embedded for f in fonts), fonts
    assert {f.name.split("+", 1)[-1] for f in fonts} >= {"DejaVu-Sans", "DejaVu-Sans-Bold"}
    # With a ToUnicode map, copying text out of the PDF gives the text back (pdftotext relies on it too).
    assert all(f.unicode for f in fonts)


def test_the_inline_svg_chart_and_the_logo_are_drawn(long_report: bytes, artifacts_dir: Path) -> None:
    first = pdf_pages_png(long_report, artifacts_dir / "pdf-render", prefix="long-report")[0]
    assert _has_colour(first, CHART_BLUE, at_least=2000), "the chart's bars are missing from page 1"
    # The logo (static/favicon.svg, fetched relative to the base URL) is drawn in the running header.
    header = Image.open(first).crop((0, 0, 200, 70))
    assert _pixels_near(header, (0x1F, 0x3A, 0x5F)) > 100, "the logo is missing from the running header"


def test_only_files_under_the_base_url_are_read(tmp_path: Path) -> None:
    red = '<svg xmlns="http://www.w3.org/2000/svg" width="200" height="200"><rect width="200" height="200" fill="#e01010"/></svg>'
    allowed, outside = tmp_path / "static", tmp_path / "elsewhere"
    allowed.mkdir(), outside.mkdir()
    (allowed / "red.svg").write_text(red)
    (outside / "red.svg").write_text(red)

    def drawn(src: str) -> bool:
        pdf = render_pdf_sync(f'<img src="{src}" style="width: 60mm">', base_url=allowed)
        (png,) = pdf_pages_png(pdf, tmp_path / "png", prefix="probe")
        return _has_colour(png, (0xE0, 0x10, 0x10), at_least=1000)

    assert drawn("red.svg")
    assert not drawn("../elsewhere/red.svg")
    assert not drawn((outside / "red.svg").as_uri())
    with pytest.raises(ValueError, match="local folder"):
        render_pdf_sync("<p>x</p>", base_url="http://127.0.0.1:1/")


def test_render_pdf_runs_off_the_event_loop(sample_report: Callable[..., str]) -> None:
    async def main() -> tuple[bytes, int]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        task = asyncio.create_task(ticker())
        pdf = await render_pdf(sample_report(rows=200))
        task.cancel()
        return pdf, ticks

    pdf, ticks = asyncio.run(main())
    assert pdf.startswith(b"%PDF-")
    assert ticks > 5, "the event loop stood still while the PDF rendered"


def test_a_twelve_page_report_renders_every_section(
    sample_report: Callable[..., str], artifacts_dir: Path
) -> None:
    # Twelve monthly sections (chart + table), as a 12-month report would have. How long it takes is
    # measured by bench/pdf_render.py, not asserted here: a busy machine is no bug.
    pdf = render_pdf_sync(sample_report(rows=20, sections=12))
    (artifacts_dir / "pdf-render").mkdir(exist_ok=True)
    pdf_pages_png(pdf, artifacts_dir / "pdf-render", prefix="twelve-month")
    assert page_count(pdf) >= 12
    assert "Spend over time — part 12" in pdf_text(pdf)
