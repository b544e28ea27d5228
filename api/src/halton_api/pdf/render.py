"""HTML to PDF with WeasyPrint, under the print stylesheet, off the event loop.

A report is server-rendered HTML (the same templates and SVG charts as the pages) plus `static/print.css`;
no JavaScript runs. WeasyPrint may fetch only `data:` URIs and files under the base URL (the static
folder), never the network or the rest of the disk: report HTML carries workspace-supplied text.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

import anyio.to_thread
from weasyprint import CSS, HTML, PROGRESS_LOGGER, URLFetcher

from halton_api.pages import STATIC_DIR

log = logging.getLogger(__name__)

PRINT_CSS = STATIC_DIR / "print.css"

# Reports read files from here (a logo, fonts) as relative URLs; pass it as `base_url`.
STATIC_BASE_URL = STATIC_DIR.as_uri() + "/"

# WeasyPrint does not document its renderer as thread-safe (pango/fontconfig underneath), so renders run
# one at a time per process; with two cores, running them side by side would not finish sooner anyway.
_render_lock = threading.Lock()
_print_css: CSS | None = None


@dataclass(frozen=True)
class RenderProgress:
    """Where WeasyPrint is in one render: step 1 (parse HTML) … 5 (lay out pages) … 7 (PDF metadata)."""

    step: int
    total_steps: int
    pages_laid_out: int
    message: str


_STEP = re.compile(r"^Step (\d+) - (.*?)(?: - Page (\d+))?$")
_TOTAL_STEPS = 7


class _ProgressRelay(logging.Handler):
    """Hands WeasyPrint's progress log lines to the callback of the render in progress.

    Renders run one at a time (the lock), so whatever arrives belongs to the current one.
    """

    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self.callback: Callable[[RenderProgress], None] | None = None
        self.pages = 0

    def emit(self, record: logging.LogRecord) -> None:
        callback = self.callback
        match = _STEP.match(record.getMessage())
        if callback is None or match is None:
            return
        if match.group(3):
            self.pages = int(match.group(3))
        try:
            callback(RenderProgress(int(match.group(1)), _TOTAL_STEPS, self.pages, match.group(2)))
        except Exception:
            # A progress display must never fail the render it reports on.
            log.exception("a render progress callback failed")


_progress_relay = _ProgressRelay()
# WeasyPrint announces each step at INFO on its own logger, which is silent by default. Listen to it here and
# keep it from reaching the application's log handlers: one line per page laid out would drown them.
PROGRESS_LOGGER.setLevel(logging.INFO)
PROGRESS_LOGGER.propagate = False
PROGRESS_LOGGER.addHandler(_progress_relay)


class _LocalOnlyFetcher(URLFetcher):
    """Fetches `data:` URIs and files under one folder; anything else is refused (WeasyPrint then logs and
    skips the resource), so a name like `<img src="http://169.254.169.254/…">` can never be fetched."""

    def __init__(self, root_url: str) -> None:
        super().__init__(allowed_protocols=("data", "file"), allow_redirects=False)
        self._root = _local_path(root_url)

    def fetch(self, url, headers=None):  # type: ignore[no-untyped-def]
        if url.startswith("file:") and not _local_path(url).is_relative_to(self._root):
            raise ValueError(f"reports may only read files under {self._root}, not {url}")
        return super().fetch(url, headers)


def _local_path(file_url: str) -> Path:
    # Resolved, so that `static/../../etc/passwd` is judged by where it really points.
    return Path(url2pathname(urlsplit(file_url).path)).resolve()


def _as_url(base_url: str | Path) -> str:
    if isinstance(base_url, Path):
        return base_url.resolve().as_uri() + "/"
    if not base_url.startswith("file:"):
        raise ValueError(
            f"base_url must be a local folder (a Path or a file: URL, e.g. STATIC_BASE_URL), not {base_url!r}: "
            "reports never fetch over the network"
        )
    return base_url if base_url.endswith("/") else base_url + "/"


def _stylesheet() -> CSS:
    # Parsed once per process: the stylesheet is static.
    global _print_css
    if _print_css is None:
        _print_css = CSS(filename=str(PRINT_CSS))
    return _print_css


def render_pdf_sync(
    html: str,
    *,
    base_url: str | Path = STATIC_BASE_URL,
    on_progress: Callable[[RenderProgress], None] | None = None,
) -> bytes:
    """The PDF for `html` (blocking: CPU-bound for up to seconds). Async code calls `render_pdf`.

    `on_progress` is called (in the rendering thread) at each WeasyPrint step and each page laid out.
    """
    url = _as_url(base_url)
    with _render_lock:
        started = time.perf_counter()
        _progress_relay.callback, _progress_relay.pages = on_progress, 0
        try:
            document = HTML(string=html, base_url=url, url_fetcher=_LocalOnlyFetcher(url)).render(
                stylesheets=[_stylesheet()]
            )
            pdf = document.write_pdf()
        finally:
            _progress_relay.callback = None
        elapsed = time.perf_counter() - started
    assert pdf is not None  # write_pdf returns the bytes when given no target
    log.info("rendered a %d-page PDF (%d bytes) in %.2f s", len(document.pages), len(pdf), elapsed)
    return pdf


async def render_pdf(
    html: str,
    *,
    base_url: str | Path = STATIC_BASE_URL,
    on_progress: Callable[[RenderProgress], None] | None = None,
) -> bytes:
    """The PDF for `html`, rendered in a worker thread so the event loop keeps serving other requests."""
    return await anyio.to_thread.run_sync(
        lambda: render_pdf_sync(html, base_url=base_url, on_progress=on_progress)
    )
