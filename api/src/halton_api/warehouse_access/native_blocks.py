"""`raw.requests` rows as ClickHouse Native blocks: the writer encodes each batch once, when it arrives,
and an INSERT only joins the blocks. Faster encoders for the three costly column types write exactly the
bytes clickhouse-connect writes."""

from __future__ import annotations

import array
import decimal
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from clickhouse_connect.datatypes.base import ClickHouseType
from clickhouse_connect.datatypes.numeric import Decimal as DecimalType
from clickhouse_connect.datatypes.special import UUID as UUIDType
from clickhouse_connect.datatypes.temporal import DateTime64 as DateTime64Type
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.common import write_array, write_leb128
from clickhouse_connect.driver.compression import get_compressor
from clickhouse_connect.driver.insert import InsertContext

from halton_api.batch_decoding import FIELD, WireRow
from halton_meter.protocol import INGESTED_REQUEST_COLUMNS

# Columns of raw.requests the writer fills, in order (ingested_at is the table's default: the warehouse's clock).
REQUEST_COLUMNS = INGESTED_REQUEST_COLUMNS


class BlockEncoder:
    """`raw.requests` rows as Native-format blocks, one per batch: an INSERT body is blocks one after the other
    (ClickHouse squashes them into one part), so each batch is encoded once, when it arrives, and the INSERT
    only joins them. Workspace, device and batch id come from each batch's token and envelope, never from its
    rows; ingested_at is left to the table's default, the warehouse's clock."""

    def __init__(self, table: str, context: InsertContext, compression: str | None) -> None:
        self.table = table
        self._context = context
        self._types = [faster_type(column_type) for column_type in context.column_types]
        # Each column's name and type as a Native block spells them before its values.
        self._labels = [
            _leb_string(name) + _leb_string(column_type.insert_name)
            for name, column_type in zip(REQUEST_COLUMNS, self._types, strict=True)
        ]
        self._compression = compression

    @classmethod
    def describe(cls, client: Client, table: str) -> BlockEncoder:
        """The encoder for `table` as the warehouse describes it, compressing as `client` sends inserts."""
        context = client.create_insert_context(
            table, column_names=list(REQUEST_COLUMNS), column_oriented=True
        )
        return cls(table, context, client.write_compression)

    def block(self, workspace_id: UUID, device_id: UUID, batch_id: UUID, rows: Sequence[WireRow]) -> bytes:
        """One Native block of a batch's `rows` (a frame of its own when the client compresses)."""
        block = bytearray()
        write_leb128(len(REQUEST_COLUMNS), block)
        write_leb128(len(rows), block)
        constants = {"workspace_id": workspace_id, "device_id": device_id, "batch_id": batch_id}
        for name, label, column_type in zip(REQUEST_COLUMNS, self._labels, self._types, strict=True):
            block += label
            value = constants.get(name)
            # One list per column read by a C getter: no per-row tuples, which would cost a transposition and,
            # with a thousand rows a batch, young-generation garbage collections.
            column = RepeatedValue(value, len(rows)) if value is not None else list(map(FIELD[name], rows))
            self._context.start_column(name)
            column_type.write_column(column, block, self._context)
        # Frame by frame is what clickhouse-connect itself sends for an insert of many blocks.
        return bytes(get_compressor(self._compression).compress_block(block))

    def insert(self, client: Client, body: bytes) -> None:
        """INSERT the blocks in `body`."""
        client.raw_insert(self.table, REQUEST_COLUMNS, body, fmt="Native", compression=self._compression)


def _leb_string(text: str) -> bytes:
    """`text` as Native strings are written: its UTF-8 length as LEB128, then the bytes."""
    encoded = text.encode()
    length = bytearray()
    write_leb128(len(encoded), length)
    return bytes(length) + encoded


class RepeatedValue(list):
    """A column of one value repeated (a batch's workspace, device or batch id), which the encoder writes
    once and repeats (`_UUIDColumn`)."""

    def __init__(self, value: Any, count: int) -> None:
        super().__init__([value] * count)
        self.value = value


# Faster Native encoders for the three column types of raw.requests that clickhouse-connect encodes one
# Python value at a time with arithmetic per value (measured on one core: of 3.6 ms per 1,000 rows for all
# columns, DateTime64 x2 took 1.3, Decimal 0.4, UUID x4 0.5; see bench/RESULTS.md, "Ingestion"). Each writes exactly the bytes
# clickhouse-connect writes for the values the writer sends (aware datetimes, validated Decimals, UUID
# objects); a test compares them on the same values. Every other column keeps clickhouse-connect's
# encoder, and so does any other parameterisation of these types.
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)


class _UUIDColumn(UUIDType, registered=False):
    """UUIDs as 16-byte blocks: big-endian bytes with each 8-byte half reversed (ClickHouse's layout); a
    value repeated for a whole batch (workspace, device, batch id) is encoded once."""

    def _write_column_binary(self, column: Sequence[Any], dest: bytearray, ctx: InsertContext) -> None:
        if self.nullable or (column and not isinstance(column[0], UUID)):
            super()._write_column_binary(column, dest, ctx)
        elif isinstance(column, RepeatedValue):
            dest += _uuid_block(column.value) * len(column)
        else:
            halves = array.array("Q", b"".join([value.bytes for value in column]))
            halves.byteswap()
            dest += halves.tobytes()


def _uuid_block(value: UUID) -> bytes:
    raw = value.bytes
    return raw[7::-1] + raw[15:7:-1]


class _DateTime64Column(DateTime64Type, registered=False):
    """DateTime64(3) from timezone-aware datetimes: whole milliseconds since the epoch by timedelta
    arithmetic (exact, where clickhouse-connect goes through a float timestamp per value)."""

    def _write_column_binary(self, column: Sequence[Any], dest: bytearray, ctx: InsertContext) -> None:
        if self.nullable or (column and not (isinstance(column[0], datetime) and column[0].tzinfo)):
            super()._write_column_binary(column, dest, ctx)
            return
        # A naive datetime among aware ones raises TypeError here: the INSERT fails rather than guess.
        write_array("q", [(value - _EPOCH) // _MILLISECOND for value in column], dest, ctx.column_name)


class _DecimalColumn(DecimalType, registered=False):
    """Decimal(18, 9) from Decimals: scaled by multiplication (clickhouse-connect formats each value
    to a string and parses it back first)."""

    def _write_column_binary(self, column: Sequence[Any], dest: bytearray, ctx: InsertContext) -> None:
        first = next((v for v in column if v is not None), None)
        if first is not None and not isinstance(first, decimal.Decimal):
            super()._write_column_binary(column, dest, ctx)
            return
        with decimal.localcontext() as context:
            context.prec = self.prec
            scale = decimal.Decimal(self._mult)
            write_array(self._array_type, [int(v * scale) if v else 0 for v in column], dest, ctx.column_name)


def faster_type(column_type: ClickHouseType) -> ClickHouseType:
    """The faster encoder for `column_type` where there is one (see `_UUIDColumn`), else the type itself."""
    kind = type(column_type)
    if kind is UUIDType:
        return _UUIDColumn(column_type.type_def)
    if kind is DateTime64Type and column_type.prec == 1000:
        return _DateTime64Column(column_type.type_def)
    if kind is DecimalType and (column_type.prec, column_type.scale) == (18, 9):
        return _DecimalColumn(
            column_type.type_def, column_type.prec, column_type.byte_size * 8, column_type.scale
        )
    return column_type
