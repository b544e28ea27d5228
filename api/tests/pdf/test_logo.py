"""Logo uploads: only whole PNG and JPEG images under the size limit, recognised by their bytes, not their name."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from halton_api.errors import Invalid
from halton_api.pdf.logo import MAX_LOGO_BYTES, data_uri, validate_logo


def image(kind: str, size: tuple[int, int] = (300, 90)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (20, 90, 160)).save(buffer, kind)
    return buffer.getvalue()


@pytest.mark.parametrize(("kind", "content_type"), [("PNG", "image/png"), ("JPEG", "image/jpeg")])
def test_png_and_jpeg_are_accepted_with_their_real_type(kind: str, content_type: str) -> None:
    logo = validate_logo(image(kind), filename="brand.gif")
    assert (logo.content_type, logo.width, logo.height) == (content_type, 300, 90)
    assert data_uri(logo.content_type, logo.data).startswith(f"data:{content_type};base64,")


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"", "is empty"),
        (b"quarterly numbers\n" * 20, "is not a PNG or JPEG image"),
        (b"GIF89a" + bytes(200), "is not a PNG or JPEG image"),
        (
            b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
            "SVG",
        ),
        (b'  <svg xmlns="http://www.w3.org/2000/svg"><rect width="9" height="9"/></svg>', "SVG"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "cannot be read as one"),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 64, "cannot be read as one"),
    ],
)
def test_anything_else_is_refused_saying_what_is_wrong(data: bytes, problem: str) -> None:
    with pytest.raises(Invalid, match=problem) as raised:
        validate_logo(data, filename="logo.png")
    assert raised.value.status_code == 422
    assert raised.value.detail.startswith("logo: logo.png ")


def test_size_limits() -> None:
    with pytest.raises(Invalid, match=r"is 513 KB; a logo may be at most 512 KB"):
        validate_logo(b"\x89PNG\r\n\x1a\n" + bytes(MAX_LOGO_BYTES + 1024 - 8), filename="big.png")
    with pytest.raises(Invalid, match=r"is 5000x20 pixels; at most 4096 pixels a side"):
        validate_logo(image("PNG", (5000, 20)), filename="wide.png")
