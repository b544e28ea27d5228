"""Writing one response as ClickHouse's HTTP handler does: progress header lines while the query runs,
then either a whole body (Content-Length) or a chunked stream that may end in an exception block.

While the query has produced nothing yet, the status line and the headers known so far are out and the
head stays open: `X-ClickHouse-Progress` lines (send_progress_in_http_headers=1) keep a client with a
short read timeout alive, and an error still gets its `X-ClickHouse-Exception-Code` header. Once a body
byte is out, an error can only be written into the body: ClickHouse (v25.11+) announces a tag in
`X-ClickHouse-Exception-Tag` and frames the message with it, which is how clients tell the error from
data and raise it:

    __exception__\\r\\n<tag>\\r\\n<message>\\n<length> <tag>\\r\\n__exception__\\r\\n
"""

from __future__ import annotations

import json
import secrets
import string
import threading
import time
from collections.abc import Callable
from typing import BinaryIO

from halton_warehouse.server.compressed_blocks import BlockEncoder
from halton_warehouse.server.content_codecs import ResponseEncoder

KEEP_ALIVE_TIMEOUT = 30  # seconds an idle keep-alive connection is kept, as ClickHouse's keep_alive_timeout
SMALL_RESPONSE = 64 << 10  # below this, head and body leave in one write
_TAG_ALPHABET = string.ascii_letters + string.digits
_REASONS = {
    200: "OK",
    204: "No Content",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    408: "Request Timeout",
    411: "Length Required",
    413: "Request Entity Too Large",
    415: "Unsupported Media Type",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
}


class ResponseWriter:
    """One response on a keep-alive connection; `progress` may be called from the engine's threads."""

    def __init__(self, wfile: BinaryIO, date: str, base_headers: dict[str, str]) -> None:
        self._wfile = wfile
        self._date = date
        self._base = base_headers
        self._lock = threading.Lock()
        self._status_sent = False  # the status line and base headers are out; the head is still open
        self._head_closed = False
        self._chunked = False
        self._encoder: ResponseEncoder | BlockEncoder | None = None
        self._progress_every: float | None = None
        self._next_progress = 0.0
        self.exception_tag: str | None = None
        self.close_connection = False
        self.client_gone = False
        self.on_client_gone: Callable[[], None] | None = None

    @property
    def body_started(self) -> bool:
        return self._head_closed

    def send_progress(self, interval_ms: int) -> None:
        """Write an X-ClickHouse-Progress line at most every `interval_ms` while the head is open."""
        self._progress_every = max(interval_ms, 1) / 1000
        # The first line after one interval, as ClickHouse: a quick query gets none.
        self._next_progress = time.monotonic() + self._progress_every

    def progress(self, payload: dict[str, int]) -> None:
        if self._progress_every is None:
            return
        now = time.monotonic()
        with self._lock:
            if self._head_closed or self.client_gone or now < self._next_progress:
                return
            self._next_progress = now + self._progress_every
            fields = ("read_rows", "read_bytes", "written_rows", "written_bytes", "total_rows_to_read")
            line = json.dumps(
                {
                    **{name: str(payload.get(name, 0)) for name in fields},
                    "result_rows": str(payload.get("result_rows", 0)),
                    "result_bytes": str(payload.get("result_bytes", 0)),
                    "elapsed_ns": str(payload.get("elapsed_ns", 0)),
                },
                separators=(",", ":"),
            )
            head = b"" if self._status_sent else self._status_line(200, self._base)
            self._status_sent = True
            try:
                self._wfile.write(head + f"X-ClickHouse-Progress: {line}\r\n".encode())
                self._wfile.flush()
            except OSError:
                self._went_away()

    def send_whole(
        self, status: int, headers: dict[str, str], body: bytes | memoryview, *, head_only: bool = False
    ) -> None:
        """A complete response with a Content-Length (an error before any body byte included)."""
        encoded: bytes | memoryview = body
        if self._encoder is not None and body and (status == 200 or self.compresses_errors):
            encoded = self._encoder.compress(body) + self._encoder.finish()
            if self._encoder.encoding:
                headers = {**headers, "Content-Encoding": self._encoder.encoding}
        with self._lock:
            length = "" if status == 204 else f"Content-Length: {len(encoded)}\r\n"
            head = self._open_head(status, headers) + f"{length}\r\n".encode()
            self._head_closed = True
        if head_only:
            self._wfile.write(head)
        elif len(encoded) < SMALL_RESPONSE:
            self._wfile.write(head + bytes(encoded))
        else:
            self._wfile.write(head)
            self._wfile.write(encoded)

    def compress_with(self, encoder: ResponseEncoder | BlockEncoder | None) -> None:
        self._encoder = encoder

    @property
    def compresses_errors(self) -> bool:
        """compress=1 (ClickHouse's blocks) covers error bodies too; Content-Encoding does not."""
        return self._encoder is not None and self._encoder.encoding is None

    def start_stream(self, headers: dict[str, str]) -> None:
        """Close the head of a 200 response whose body follows in chunks."""
        self.exception_tag = "".join(secrets.choice(_TAG_ALPHABET) for _ in range(16))
        headers = {**headers, "X-ClickHouse-Exception-Tag": self.exception_tag}
        if self._encoder is not None and self._encoder.encoding:
            headers["Content-Encoding"] = self._encoder.encoding
        with self._lock:
            head = self._open_head(200, headers) + b"Transfer-Encoding: chunked\r\n\r\n"
            self._head_closed = True
            self._chunked = True
        self._wfile.write(head)

    def write(self, data: bytes | memoryview) -> None:
        if self._encoder is not None:
            data = self._encoder.compress(data)
        self._write_chunk(data)

    def end_stream(self) -> None:
        if self._encoder is not None:
            self._write_chunk(self._encoder.finish())
        self._wfile.write(b"0\r\n\r\n")

    def fail_stream(self, message: bytes) -> None:
        """An error after body bytes went out: the tagged exception block, then the end of the stream.

        The connection closes afterwards, as ClickHouse's does: the body is not a complete result.
        """
        tag = (self.exception_tag or "").encode()
        text = message.rstrip(b"\n") + b"\n"
        block = (
            b"\r\n__exception__\r\n"
            + tag
            + b"\r\n"
            + text
            + str(len(text)).encode()
            + b" "
            + tag
            + b"\r\n__exception__\r\n"
        )
        self.close_connection = True
        self.write(block)
        self.end_stream()

    def _write_chunk(self, data: bytes | memoryview) -> None:
        if not data:
            return
        try:
            if len(data) < SMALL_RESPONSE:
                self._wfile.write(b"%x\r\n" % len(data) + bytes(data) + b"\r\n")
            else:
                self._wfile.write(b"%x\r\n" % len(data))
                self._wfile.write(data)
                self._wfile.write(b"\r\n")
        except OSError:
            self._went_away()
            raise

    def _open_head(self, status: int, headers: dict[str, str]) -> bytes:
        """What is left to write of the head, up to (not including) its final line."""
        if self._status_sent:
            # Progress lines went out with status 200; an error can only add its headers now.
            lines = [f"{name}: {value}" for name, value in headers.items() if name not in self._base]
            return ("".join(line + "\r\n" for line in lines)).encode("latin-1", errors="replace")
        self._status_sent = True
        return self._status_line(status, headers)

    def _status_line(self, status: int, headers: dict[str, str]) -> bytes:
        lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}", f"Date: {self._date}"]
        if self.close_connection:
            lines.append("Connection: Close")
        else:
            lines.append("Connection: Keep-Alive")
            lines.append(f"Keep-Alive: timeout={KEEP_ALIVE_TIMEOUT}")
        lines.extend(f"{name}: {value}" for name, value in {**self._base, **headers}.items())
        return ("\r\n".join(lines) + "\r\n").encode("latin-1", errors="replace")

    def _went_away(self) -> None:
        if not self.client_gone:
            self.client_gone = True
            self.close_connection = True
            if self.on_client_gone is not None:
                self.on_client_gone()
