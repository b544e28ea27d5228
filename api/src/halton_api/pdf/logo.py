"""A workspace logo for the PDF reports: what an upload must be to be kept, and how a report embeds it.

Only PNG and JPEG are accepted, recognised by their magic bytes (never by the name or the type the browser
claims) and then decoded once to prove they are whole images. SVG is refused rather than sanitised: an SVG
is a document that can carry scripts and references to other files, and a logo does not need to be one.
Reports embed the logo as a `data:` URI, so rendering never reads anything but the stored bytes.
"""

from __future__ import annotations

import base64
import io
import logging
import warnings
from dataclasses import dataclass

from PIL import Image

from halton_api.errors import Invalid

log = logging.getLogger(__name__)

MAX_LOGO_BYTES = 512 * 1024
# A logo prints 7 mm high; anything bigger than this is a photograph, or a decompression bomb.
MAX_LOGO_SIDE = 4096
CONTENT_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg"}
_MAGIC = ((b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"))


@dataclass(frozen=True)
class Logo:
    data: bytes
    content_type: str
    width: int
    height: int


def _kilobytes(size: int) -> str:
    return f"{size / 1024:,.0f} KB" if size >= 1024 else f"{size} bytes"


def _looks_like_svg(head: bytes) -> bool:
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return text.startswith((b"<?xml", b"<svg", b"<!doctype svg")) or b"<svg" in text[:1024]


def validate_logo(data: bytes, *, filename: str = "the file") -> Logo:
    """The logo in `data`, or `Invalid` (422) saying what is wrong with it and what to upload instead."""
    if not data:
        raise Invalid(f"logo: {filename} is empty: choose a PNG or JPEG image")
    if len(data) > MAX_LOGO_BYTES:
        raise Invalid(
            f"logo: {filename} is {_kilobytes(len(data))}; a logo may be at most {_kilobytes(MAX_LOGO_BYTES)}: "
            "export it smaller (a few hundred pixels wide is plenty for print)"
        )
    kind = next((name for magic, name in _MAGIC if data.startswith(magic)), None)
    if kind is None:
        if _looks_like_svg(data[:2048]):
            raise Invalid(
                f"logo: {filename} is an SVG image; SVG logos are not accepted (an SVG can carry scripts): "
                "export it as PNG"
            )
        raise Invalid(
            f"logo: {filename} is not a PNG or JPEG image (its content is neither, whatever its name says): "
            "upload a PNG or JPEG file"
        )
    try:
        with warnings.catch_warnings():
            # Pillow only warns about a very large image; the side limit below is ours.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=[kind]) as image:
                width, height = image.size
                if max(width, height) > MAX_LOGO_SIDE:
                    raise Invalid(
                        f"logo: {filename} is {width}x{height} pixels; at most {MAX_LOGO_SIDE} pixels a side"
                    )
                image.verify()
    except Invalid:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise Invalid(
            f"logo: {filename} starts like a {kind} image but cannot be read as one ({exc}): "
            "export it again and upload the new file"
        ) from None
    return Logo(data=data, content_type=CONTENT_TYPES[kind], width=width, height=height)


def data_uri(content_type: str, data: bytes) -> str:
    """The logo as a `data:` URI (what the report HTML's `<img src>` carries)."""
    return f"data:{content_type};base64,{base64.b64encode(data).decode('ascii')}"
