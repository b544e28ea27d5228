"""Reading a request: the body as it arrives, and the statement at its head.

ClickHouse's HTTP handler reads the statement as the `query` URL parameter, a newline, then the
body. An `INSERT ... FORMAT <fmt>` statement ends where its data starts: the rest of the body is
streamed into chDB as it arrives, never held whole. Any other statement is read whole.
"""

from __future__ import annotations

import email.parser
import email.policy
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from halton_warehouse.server.compressed_blocks import BlockDecoder
from halton_warehouse.server.content_codecs import BodyDecoder, body_decoder
from halton_warehouse.server.sql_scan import (
    InsertSplit,
    NeedMoreText,
    StatementShape,
    UnsupportedInsert,
    first_keyword,
    inspect_statement,
    split_insert,
)
from halton_warehouse.server.wire_errors import (
    BAD_ARGUMENTS,
    CANNOT_READ_ALL_DATA,
    NOT_IMPLEMENTED,
    QUERY_IS_TOO_LARGE,
    ClickHouseError,
)

MAX_INSERT_HEADER = 1 << 20  # an INSERT's header must end within this many bytes
MAX_STATEMENT = 64 << 20  # a statement that is not an INSERT with data is read whole, up to this
_READ_SIZE = 4 << 20
_FIRST_SCAN = 64 << 10


class RequestBody:
    """The body of one request, transfer-decoded (Content-Length or chunked) and content-decoded."""

    def __init__(
        self,
        rfile: BinaryIO,
        transfer_encoding: str | None,
        content_length: str | None,
        content_encoding: str | None,
        *,
        compressed_blocks: bool = False,
    ) -> None:
        self._rfile = rfile
        self._chunked = "chunked" in (transfer_encoding or "").lower()
        try:
            self._remaining = int(content_length) if content_length and not self._chunked else 0
        except ValueError:
            raise ClickHouseError(BAD_ARGUMENTS, f"Invalid Content-Length: {content_length!r}") from None
        # The whole body has been read off the socket (so the connection can carry another request).
        self.consumed = not self._chunked and self._remaining == 0
        self._decoder: BodyDecoder = body_decoder(content_encoding)
        if compressed_blocks:  # decompress=1: ClickHouse's compressed blocks, inside any Content-Encoding
            self._decoder = BlockDecoder(self._decoder)

    def chunks(self) -> Iterator[bytes]:
        """Decoded pieces of the body, in order; empty pieces are skipped."""
        for raw in self._raw_chunks():
            data = self._decoder.feed(raw)
            if data:
                yield data
        tail = self._decoder.finish()
        if tail:
            yield tail

    def read_raw(self) -> bytes:
        """The whole body as sent (for form data), without content decoding."""
        return b"".join(self._raw_chunks())

    def _raw_chunks(self) -> Iterator[bytes]:
        if self._chunked:
            yield from self._chunked_pieces()
        else:
            while self._remaining > 0:
                data = self._rfile.read(min(self._remaining, _READ_SIZE))
                if not data:
                    raise ClickHouseError(
                        CANNOT_READ_ALL_DATA, "The request body ended before its Content-Length"
                    )
                self._remaining -= len(data)
                yield data
        self.consumed = True

    def _chunked_pieces(self) -> Iterator[bytes]:
        while True:
            line = self._rfile.readline(1024)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise ClickHouseError(
                    CANNOT_READ_ALL_DATA, f"Malformed chunk size line {line[:40]!r}"
                ) from None
            if size == 0:
                while self._rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass  # trailers carry nothing we use
                return
            while size > 0:
                data = self._rfile.read(min(size, _READ_SIZE))
                if not data:
                    raise ClickHouseError(CANNOT_READ_ALL_DATA, "The request body ended inside a chunk")
                size -= len(data)
                yield data
            self._rfile.readline(1024)


def parse_form(content_type: str, raw: bytes) -> tuple[dict[str, str], dict[str, bytes]]:
    """Fields and files of a multipart/form-data body: clickhouse-connect sends long bind parameters as
    fields, and external data (tables sent with the query) as files named after their table."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + raw
    )
    fields: dict[str, str] = {}
    files: dict[str, bytes] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not name:
            continue
        payload = part.get_payload(decode=True) or b""
        if part.get_filename():
            files.setdefault(str(name), payload)
        else:
            fields.setdefault(str(name), payload.decode("utf-8"))
    return fields, files


@dataclass
class Statement:
    """What a request asks to run: a whole statement, or an INSERT header and its data stream."""

    sql: str
    shape: StatementShape
    insert: InsertSplit | None = None
    data: Iterator[bytes] | None = None  # for a streaming INSERT: its data, first piece included
    # The statement as sent when it is not UTF-8 (binary literals): the engine gets these bytes, while `sql`
    # is their Latin-1 reading for the checks (every non-ASCII byte stays a non-identifier character).
    raw: bytes | None = None

    @property
    def for_engine(self) -> str | bytes:
        return self.raw if self.raw is not None else self.sql


def read_statement(query_parameter: str, body: Iterator[bytes]) -> Statement:
    head = bytearray(query_parameter.encode("utf-8") + b"\n") if query_parameter else bytearray()
    pieces = iter(body)
    complete = False
    scan_limit = _FIRST_SCAN

    def pull() -> None:
        nonlocal complete
        piece = next(pieces, None)
        if piece is None:
            complete = True
        else:
            head.extend(piece)

    if not head:
        pull()
    while True:
        # Latin-1 maps bytes one to one, so offsets in the text are offsets in the body, and binary
        # data after the header cannot break the decoding.
        window_complete = complete and scan_limit >= len(head)
        text = bytes(head[:scan_limit]).decode("latin-1")
        keyword_end, keyword = first_keyword(text)
        undecided = (not keyword or keyword_end == len(text)) and not window_complete
        if not undecided:
            if keyword != "INSERT":
                return _whole_statement(head, pieces, complete)
            try:
                split = split_insert(text, window_complete)
            except UnsupportedInsert as refused:
                raise ClickHouseError(NOT_IMPLEMENTED, str(refused)) from None
            except NeedMoreText:
                if len(head) > MAX_INSERT_HEADER:
                    raise ClickHouseError(
                        QUERY_IS_TOO_LARGE,
                        "Max query size exceeded: the INSERT's FORMAT clause is not in its first "
                        f"{MAX_INSERT_HEADER} bytes",
                    ) from None
            else:
                if split is None:
                    return _whole_statement(head, pieces, complete)
                sql = bytes(head[: len(split.statement)]).decode("utf-8", errors="replace")
                first = bytes(head[split.data_start :])
                return Statement(
                    sql=sql, shape=inspect_statement(sql), insert=split, data=_prepend(first, pieces)
                )
        elif len(head) > MAX_INSERT_HEADER:
            # No keyword yet after this much text (a giant comment): not an INSERT header to stream.
            return _whole_statement(head, pieces, complete)
        if scan_limit < len(head):
            scan_limit *= 2
        else:
            pull()


def _whole_statement(head: bytearray, pieces: Iterator[bytes], complete: bool) -> Statement:
    if not complete:
        for piece in pieces:
            head.extend(piece)
            if len(head) > MAX_STATEMENT:
                raise ClickHouseError(
                    QUERY_IS_TOO_LARGE, f"Max query size exceeded: more than {MAX_STATEMENT} bytes"
                )
    try:
        sql = head.decode("utf-8")
    except UnicodeDecodeError:
        sql = head.decode("latin-1")
        return Statement(sql=sql, shape=inspect_statement(sql), raw=bytes(head))
    return Statement(sql=sql, shape=inspect_statement(sql))


def _prepend(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    if first:
        yield first
    yield from rest
