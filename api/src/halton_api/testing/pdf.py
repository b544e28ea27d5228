"""Looking inside PDFs in tests, with poppler-utils (a second, independent reader of what WeasyPrint and
pyHanko wrote): pages as PNG, text laid out per page, the font table, the signature panel.

Importable from any package's tests. Needs the Debian package poppler-utils (scripts/system-packages.sh).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class PdfFont:
    """One row of `pdffonts`."""

    name: str
    type: str
    encoding: str
    embedded: bool
    subset: bool
    unicode: bool


_PDF = "{pdf}"


def _poppler(tool: str, *args: str, pdf_bytes: bytes) -> str:
    """Run `tool` with `args` (`{pdf}` stands for the document, written to a temporary file); its stdout."""
    if shutil.which(tool) is None:
        raise RuntimeError(f"{tool} is not installed: run scripts/system-packages.sh (Debian poppler-utils)")
    with tempfile.TemporaryDirectory(prefix="halton-pdf-") as tmp:
        path = Path(tmp) / "document.pdf"
        path.write_bytes(pdf_bytes)
        argv = [tool, *(str(path) if arg == _PDF else arg for arg in args)]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    # pdfsig exits non-zero for a document whose signature does not validate: the report is still wanted.
    if done.returncode != 0 and tool != "pdfsig":
        raise RuntimeError(f"{tool} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout + done.stderr if tool == "pdfsig" else done.stdout


def pdf_pages_png(pdf_bytes: bytes, out_dir: Path, *, prefix: str = "page", dpi: int = 80) -> list[Path]:
    """Every page as `out_dir/<prefix>-<n>.png` (pdftoppm), in page order."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob(f"{prefix}-*.png"):
        old.unlink()
    with tempfile.TemporaryDirectory(prefix="halton-pdf-") as tmp:
        path = Path(tmp) / "document.pdf"
        path.write_bytes(pdf_bytes)
        subprocess.run(
            ["pdftoppm", "-r", str(dpi), "-png", str(path), str(out_dir / prefix)],
            check=True,
            capture_output=True,
            timeout=300,
        )
    # pdftoppm pads the page number to the width of the page count (page-01 … page-12): sort numerically.
    return sorted(out_dir.glob(f"{prefix}-*.png"), key=lambda p: int(p.stem.rsplit("-", 1)[1]))


def pdf_pages_text(pdf_bytes: bytes) -> list[str]:
    """The text of each page (pdftotext -layout), in page order."""
    text = _poppler("pdftotext", "-layout", "-enc", "UTF-8", _PDF, "-", pdf_bytes=pdf_bytes)
    pages = text.split("\f")
    # pdftotext ends every page with a form feed, so the last piece is the empty rest after the last page.
    return pages[:-1] if pages and pages[-1] == "" else pages


def pdf_text(pdf_bytes: bytes) -> str:
    """The whole document's text (pdftotext -layout), pages separated by form feeds."""
    return "\f".join(pdf_pages_text(pdf_bytes))


def page_count(pdf_bytes: bytes) -> int:
    for line in _poppler("pdfinfo", _PDF, pdf_bytes=pdf_bytes).splitlines():
        if line.startswith("Pages:"):
            return int(line.split(":", 1)[1])
    raise RuntimeError("pdfinfo printed no page count")


def pdf_fonts(pdf_bytes: bytes) -> list[PdfFont]:
    """The fonts the document uses (pdffonts), with whether each is embedded."""
    lines = _poppler("pdffonts", _PDF, pdf_bytes=pdf_bytes).splitlines()
    # Columns are fixed-width, sized by the dashes under the header; names may contain spaces.
    rule = next(i for i, line in enumerate(lines) if line.startswith("---"))
    spans, start = [], 0
    for dashes in lines[rule].split(" "):
        spans.append((start, start + len(dashes)))
        start += len(dashes) + 1
    fonts = []
    for line in lines[rule + 1 :]:
        if not line.strip():
            continue
        cells = [line[a:b].strip() for a, b in spans]
        name, font_type, encoding, emb, sub, uni = cells[:6]
        fonts.append(PdfFont(name, font_type, encoding, emb == "yes", sub == "yes", uni == "yes"))
    return fonts


def pdf_signatures(pdf_bytes: bytes, *, nssdir: Path | None = None) -> str:
    """poppler's own report of the document's signatures (pdfsig): what a plain PDF reader would show, or
    with `nssdir` (see `nss_trusting`) what a reader shows who trusts the certificates in that database."""
    options = ("-nssdir", f"sql:{nssdir}") if nssdir is not None else ()
    return _poppler("pdfsig", *options, _PDF, pdf_bytes=pdf_bytes)


def nss_trusting(certificate_pem: bytes, directory: Path) -> Path:
    """A new NSS database in `directory` that trusts `certificate_pem` for signed documents, made the way the
    README tells a reader to (certutil, trust flags ",C,"): for `pdf_signatures(…, nssdir=…)`."""
    if shutil.which("certutil") is None:
        raise RuntimeError("certutil is not installed: run scripts/system-packages.sh (Debian libnss3-tools)")
    directory.mkdir(parents=True, exist_ok=True)
    pem = directory / "trusted.pem"
    pem.write_bytes(certificate_pem)
    for argv in (
        ["certutil", "-N", "-d", f"sql:{directory}", "--empty-password"],
        ["certutil", "-A", "-d", f"sql:{directory}", "-n", "workspace", "-t", ",C,", "-i", str(pem)],
    ):
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv[:2])} failed ({done.returncode}): {done.stderr.strip()}")
    return directory
