"""How long WeasyPrint takes to render a twelve-section report (chart + table per month, as a 12-month
project report has): the figure the PDF tests used to assert (under 10 s), measured here instead, where a
busy machine makes a slow number rather than a failed suite.

Uses the tests' own sample report (api/tests/pdf/conftest.py), renders it once to warm up font discovery
(once per process), then N times.

Run: ``uv run python bench/pdf_render.py [--runs 5]``.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import statistics
import time
from pathlib import Path

from halton_api.pdf.render import render_pdf_sync
from halton_api.testing.pdf import page_count

SAMPLE = Path(__file__).resolve().parent.parent / "api" / "tests" / "pdf" / "conftest.py"


def sample_report_html(**kwargs: int) -> str:
    spec = importlib.util.spec_from_file_location("pdf_sample_report", SAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.sample_report_html(**kwargs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    html = sample_report_html(rows=20, sections=12)
    render_pdf_sync("<p>warm-up</p>")
    seconds, pages = [], 0
    for _ in range(args.runs):
        started = time.perf_counter()
        pdf = render_pdf_sync(html)
        seconds.append(time.perf_counter() - started)
        pages = page_count(pdf)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}"
    )
    print(
        f"twelve-section report: {pages} pages; render median {statistics.median(seconds):.2f} s, max {max(seconds):.2f} s over {args.runs} runs (target < 10 s)"
    )


if __name__ == "__main__":
    main()
