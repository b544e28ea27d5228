"""Native output as a ClickHouse server writes it for the `client_protocol_version` a client names.

chDB writes Native as for client revision 0, and a server answers by the revision the HTTP client sends
(clickhouse-connect sends 54405). What differs, from ClickHouse's NativeWriter:

- revision > 0: each block starts with its BlockInfo (`01 00 02 ff ff ff ff 00`: not overflows, bucket -1);
- revision >= 54337: a top-level `DateTime('zone')` column keeps its zone in the type name (revision 0 is
  told plain `DateTime`, and the client then reads the instants in the server's zone);
- revision < 54405: LowCardinality is sent as its plain type (refused here: it would mean re-encoding data);
- revision >= 54454: each column's type is followed by a custom-serialization byte (0: chDB's data is dense).

Each block is: varuint columns, varuint rows, then per column its name and type (varuint length + bytes)
and its data. The data of a column holds no length, so reaching the next column's type means walking the
data by its type (`_skip`). Only the columns up to the last one whose header changes are walked; past it,
the rest of a one-block piece (as chDB streams them) is copied as it is.
"""

from __future__ import annotations

import itertools
import re
import struct

from halton_warehouse.server.wire_errors import BAD_ARGUMENTS, NOT_IMPLEMENTED, ClickHouseError

BLOCK_INFO = b"\x01\x00\x02\xff\xff\xff\xff\x00"
WITH_BLOCK_INFO = 1
WITH_TIME_ZONES = 54337
WITH_LOW_CARDINALITY = 54405
WITH_CUSTOM_SERIALIZATION = 54454

_FIXED_WIDTHS = {
    **dict.fromkeys(("UInt8", "Int8", "Bool", "Enum8", "Nothing"), 1),
    **dict.fromkeys(("UInt16", "Int16", "Date", "Enum16", "BFloat16"), 2),
    **dict.fromkeys(("UInt32", "Int32", "Float32", "DateTime", "Date32", "IPv4", "Decimal32", "Time"), 4),
    **dict.fromkeys(("UInt64", "Int64", "Float64", "DateTime64", "Decimal64", "Time64"), 8),
    **dict.fromkeys(("UInt128", "Int128", "Decimal128", "UUID", "IPv6"), 16),
    **dict.fromkeys(("UInt256", "Int256", "Decimal256"), 32),
}
# Geo types are named shapes of tuples and arrays.
_ALIASES = {
    "Point": "Tuple(Float64, Float64)",
    "Ring": "Array(Point)",
    "LineString": "Array(Point)",
    "Polygon": "Array(Ring)",
    "MultiLineString": "Array(LineString)",
    "MultiPolygon": "Array(Polygon)",
}
_UINT64 = struct.Struct("<Q")
_INDEX_WIDTHS = (1, 2, 4, 8)
_HAS_ADDITIONAL_KEYS = 1 << 9
_PLAIN_DATETIME = re.compile(rb"\x08DateTime")
_TYPE_HEAD = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:\((.*)\))?\s*", re.DOTALL)


def parse_revision(value: str | None) -> int:
    """The client_protocol_version parameter (absent: 0, as a server reads it)."""
    if not value:
        return 0
    if not value.isdigit():
        raise ClickHouseError(
            BAD_ARGUMENTS, f"client_protocol_version must be a non-negative integer, not {value!r}"
        )
    return int(value)


class _CannotWalk(Exception):
    """A column whose data this module cannot measure (aggregate states, Variant, Dynamic, JSON)."""


class NativeForRevision:
    """Rewrites chDB's Native pieces (whole blocks) into the Native a client of `revision` reads.

    From WITH_TIME_ZONES on, a column chDB types plain `DateTime` may have had a zone: `needs_types` tells
    from the first piece whether the result has such a column, and `learn_types` takes the result's full
    type names (from DESCRIBE) before the first piece is rewritten.
    """

    def __init__(self, revision: int) -> None:
        self.revision = revision
        self._types: list[str] = []
        # For each column: the type a client of this revision is told when chDB writes plain `DateTime`.
        self._zoned: dict[int, str] = {}
        self._flag = b"\x00" if revision >= WITH_CUSTOM_SERIALIZATION else b""

    def needs_types(self, first_piece: bytes | memoryview) -> bool:
        """Whether the result may hold a column typed plain `DateTime` (every block has the same columns;
        the bytes could also be data, which costs only a needless DESCRIBE)."""
        return self.revision >= WITH_TIME_ZONES and _PLAIN_DATETIME.search(first_piece) is not None

    def learn_types(self, result_types: list[str] | None) -> None:
        self._types = result_types or []
        self._zoned = {index: kind for index, kind in enumerate(self._types) if kind.startswith("DateTime(")}

    def rewrite(self, piece: bytes | memoryview, rows: int | None = None) -> bytes:
        """The blocks of `piece` for the client. `rows`, when given, is the row count of the piece:
        a piece whose first block holds them all is that one block, and is walked only as far as needed."""
        walks = self._zoned or self._flag or self.revision < WITH_LOW_CARDINALITY
        # Walking reads byte by byte, which is quicker on bytes than on a memoryview: one copy of the piece.
        view = memoryview(bytes(piece) if walks and not isinstance(piece, bytes) else piece)
        out: list[bytes | memoryview] = []
        pos = 0
        while pos < len(view):
            pos = self._block(view, pos, out, one_block=rows is not None and pos == 0, rows=rows)
        return b"".join(out)

    def _block(
        self, view: memoryview, pos: int, out: list[bytes | memoryview], *, one_block: bool, rows: int | None
    ) -> int:
        out.append(BLOCK_INFO)
        start = pos
        columns, pos = _varuint(view, pos)
        nrows, pos = _varuint(view, pos)
        whole = one_block and nrows == rows
        last_changed = max(self._zoned, default=-1)
        if self._flag or self.revision < WITH_LOW_CARDINALITY:
            last_changed = columns - 1  # every column's header changes or must be checked
        out.append(view[start:pos])
        for index in range(columns):
            if whole and index > last_changed:
                out.append(view[pos:])
                return len(view)
            name_end = _skip_string(view, pos)
            type_len, type_at = _varuint(view, name_end)
            kind = bytes(view[type_at : type_at + type_len]).decode()
            data_at = type_at + type_len
            if self.revision < WITH_LOW_CARDINALITY and "LowCardinality(" in kind:
                name = _read_string(view, pos)
                raise ClickHouseError(
                    NOT_IMPLEMENTED,
                    f"Column {name!r} is {kind}: client_protocol_version {self.revision} predates LowCardinality "
                    f"({WITH_LOW_CARDINALITY}) and this server cannot send it as its plain type. "
                    "Cast it in the query, or ask with a newer client_protocol_version",
                )
            out.append(view[pos:name_end])
            told = self._zoned.get(index, kind) if kind == "DateTime" else kind
            out.append(_string(told.encode()) + self._flag)
            if not nrows:
                pos = data_at
                continue
            try:
                pos = _skip(view, data_at, kind, nrows)
            except _CannotWalk:
                if whole and index >= last_changed:
                    out.append(view[data_at:])
                    return len(view)
                name = _read_string(view, pos)
                raise ClickHouseError(
                    NOT_IMPLEMENTED,
                    f"Cannot send column {name!r} of type {kind} in Native for client_protocol_version "
                    f"{self.revision}: this server cannot walk its data to the columns after it. "
                    "Ask without client_protocol_version or in another format",
                ) from None
            out.append(view[data_at:pos])
        return pos


def _varuint(view: memoryview, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = view[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _string(data: bytes) -> bytes:
    length = len(data)
    head = bytearray()
    while length >= 0x80:
        head.append((length & 0x7F) | 0x80)
        length >>= 7
    head.append(length)
    return bytes(head) + data


def _skip_string(view: memoryview, pos: int) -> int:
    length, pos = _varuint(view, pos)
    return pos + length


def _read_string(view: memoryview, pos: int) -> str:
    length, pos = _varuint(view, pos)
    return bytes(view[pos : pos + length]).decode(errors="replace")


def _parse_type(kind: str) -> tuple[str, list[str]]:
    """`Name(arg, arg)` as its name and its top-level arguments."""
    match = _TYPE_HEAD.fullmatch(kind.strip())
    if match is None:
        raise _CannotWalk(kind)
    return match.group(1), _split_arguments(match.group(2) or "")


def _split_arguments(text: str) -> list[str]:
    parts: list[str] = []
    depth = 0
    quote = ""
    current = 0
    index = 0
    while index < len(text):
        char = text[index]
        if quote:
            if char == "\\":
                index += 1
            elif char == quote:
                quote = ""
        elif char in "'`\"":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and not depth:
            parts.append(text[current:index].strip())
            current = index + 1
        index += 1
    if text.strip():
        parts.append(text[current:].strip())
    return parts


def _element_type(argument: str) -> str:
    """A Tuple element's type: `name Type` or a bare `Type` (no type name holds a top-level space)."""
    depth = 0
    quote = ""
    for index, char in enumerate(argument):
        if quote:
            if char == quote:
                quote = ""
        elif char in "'`\"":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char.isspace() and not depth:
            return argument[index:].strip()
    return argument


def _skip(view: memoryview, pos: int, kind: str, rows: int) -> int:
    """Where the data of `rows` values of `kind` (revision 0's serialization) starting at `pos` ends."""
    name, arguments = _parse_type(kind)
    if name in _ALIASES:
        return _skip(view, pos, _ALIASES[name], rows)
    width = _FIXED_WIDTHS.get(name)
    if width is not None:
        end = pos + width * rows
    elif name == "FixedString":
        end = pos + int(arguments[0]) * rows
    elif name == "Decimal":
        precision = int(arguments[0])
        end = pos + rows * (4 if precision <= 9 else 8 if precision <= 18 else 16 if precision <= 38 else 32)
    elif name == "String":
        data = view.obj if isinstance(view.obj, bytes) else view
        for _ in itertools.repeat(None, rows):
            length = data[pos]
            if length < 0x80:
                pos += length + 1
            else:
                pos = _skip_string(view, pos)
        end = pos
    elif name == "Nullable":
        end = _skip(view, pos + rows, arguments[0], rows)
    elif name == "Array":
        total = _UINT64.unpack_from(view, pos + 8 * (rows - 1))[0] if rows else 0
        end = _skip(view, pos + 8 * rows, arguments[0], total) if total else pos + 8 * rows
    elif name == "Map":
        total = _UINT64.unpack_from(view, pos + 8 * (rows - 1))[0]
        end = pos + 8 * rows
        for argument in arguments:
            end = _skip(view, end, argument, total) if total else end
    elif name == "Tuple":
        end = pos
        for argument in arguments:
            end = _skip(view, end, _element_type(argument), rows)
    elif name == "LowCardinality":
        end = _skip_low_cardinality(view, pos, arguments[0], rows)
    elif name == "SimpleAggregateFunction":
        end = _skip(view, pos, arguments[-1], rows)
    else:
        raise _CannotWalk(kind)
    if end > len(view):
        raise _CannotWalk(kind)
    return end


def _skip_low_cardinality(view: memoryview, pos: int, inner: str, rows: int) -> int:
    """Key version (UInt64), then granules: index kind (UInt64), [key count (UInt64), dictionary of the
    inner type without Nullable], row count (UInt64), indexes."""
    dictionary_type = inner
    name, arguments = _parse_type(inner)
    if name == "Nullable":
        dictionary_type = arguments[0]
    pos += 8
    while rows > 0:
        index_kind = _UINT64.unpack_from(view, pos)[0]
        pos += 8
        if index_kind & _HAS_ADDITIONAL_KEYS:
            keys = _UINT64.unpack_from(view, pos)[0]
            pos = _skip(view, pos + 8, dictionary_type, keys) if keys else pos + 8
        count = _UINT64.unpack_from(view, pos)[0]
        pos += 8 + count * _INDEX_WIDTHS[index_kind & 0xFF]
        rows -= count
        if not count:
            raise _CannotWalk(f"LowCardinality({inner})")
    return pos
