"""Native blocks of `raw.requests` rows: the bytes clickhouse-connect writes, faster."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from halton_api.testing.factories import row, wire_row
from halton_meter.protocol import RequestRow


def test_a_batch_block_is_what_clickhouse_connect_writes_and_a_group_is_one_part(warehouse) -> None:
    """Each batch is encoded on arrival as a Native block of its own: the same bytes clickhouse-connect writes
    for those columns (workspace, device and batch id from the batch, never from its rows), and an INSERT of
    several such blocks is one part."""
    from datetime import timedelta

    from clickhouse_connect.driver.transform import NativeTransform

    from halton_api.warehouse_access.native_blocks import REQUEST_COLUMNS, BlockEncoder

    table = f"{warehouse.databases.raw}.requests"
    client = warehouse.client()
    described = BlockEncoder.describe(client, table)
    encoder = BlockEncoder(table, client.create_insert_context(table, list(REQUEST_COLUMNS)), None)
    workspace, device, batch_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    # A month no other test writes: the partition holds only this test's parts.
    start = datetime(2001, 1, 1, tzinfo=UTC)
    rows = [wire_row(row("m", started_at=start + timedelta(seconds=i))) for i in range(5)]
    constants = {"workspace_id": workspace, "device_id": device, "batch_id": batch_id}
    context = client.create_insert_context(table, list(REQUEST_COLUMNS), column_oriented=True)
    context.compression = None
    context.data = [[constants.get(name) or getattr(r, name) for r in rows] for name in REQUEST_COLUMNS]
    written = b"".join(NativeTransform.build_insert(context)).partition(b" FORMAT Native\n")[
        2
    ]  # less the INSERT
    assert encoder.block(workspace, device, batch_id, rows) == written

    batches = [
        (
            uuid.uuid4(),
            [wire_row(row("m", started_at=start + timedelta(hours=h, seconds=i))) for i in range(n)],
        )
        for h, n in ((1, 3), (2, 4), (3, 2))
    ]
    body = b"".join(described.block(workspace, device, b, r) for b, r in batches)
    described.insert(client, body)
    raw = warehouse.databases.raw
    stored = client.query(
        f"SELECT batch_id, count() FROM {raw}.requests WHERE workspace_id = '{workspace}' GROUP BY batch_id"
    ).result_rows
    assert dict(stored) == {b: len(r) for b, r in batches}
    parts = client.command(
        f"SELECT count() FROM system.parts WHERE database = '{raw}' AND table = 'requests'"
        " AND partition = '200101' AND active"
    )
    assert int(parts) == 1


def test_the_faster_encoders_write_the_same_bytes_as_clickhouse_connect() -> None:
    """`_UUIDColumn`, `_DateTime64Column` and `_DecimalColumn` against clickhouse-connect's own encoders,
    on the values the writer sends: UUID objects (a batch's constant and distinct ones), aware datetimes in
    any offset (before the epoch and with sub-millisecond parts too), Decimals with None and zero."""
    from datetime import datetime, timedelta, timezone
    from decimal import Decimal

    from clickhouse_connect.datatypes.registry import get_from_name
    from clickhouse_connect.driver.insert import InsertContext
    from clickhouse_connect.driver.transform import NativeTransform

    from halton_api.warehouse_access.native_blocks import RepeatedValue, faster_type

    batch_id = uuid.uuid4()
    constant = RepeatedValue(batch_id, 5)
    assert constant == [batch_id] * 5
    moments = [
        datetime(2026, 5, 1, 10, 0, 0, 999_999, tzinfo=UTC),
        datetime(1969, 12, 31, 23, 59, 59, 999_500, tzinfo=UTC),
        datetime(2026, 5, 1, 12, 0, 0, 123_456, tzinfo=timezone(timedelta(hours=2))),
        RequestRow.model_validate(row("m")).started_at,  # pydantic's own tzinfo
        datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=-5, minutes=-30))),
    ]
    costs = [Decimal("0.009630000"), None, Decimal("0"), Decimal("123456789.123456789"), Decimal("1E+2")]
    columns = [
        ("a", "UUID", constant),
        ("b", "UUID", [uuid.uuid4() for _ in range(5)]),
        ("c", "DateTime64(3, 'UTC')", moments),
        ("d", "Nullable(Decimal(18, 9))", costs),
        ("e", "Decimal(18, 9)", [c or Decimal("0.5") for c in costs]),
    ]
    plain = [get_from_name(type_name) for _, type_name, _ in columns]
    faster = [faster_type(t) for t in plain]
    assert [type(t) for t in faster] != [type(t) for t in plain]
    assert [t.name for t in faster] == [t.name for t in plain]

    def encode(types) -> bytes:
        context = InsertContext(
            "t", [n for n, _, _ in columns], types, column_oriented=True, compression=None
        )
        context.data = [values for _, _, values in columns]
        return b"".join(NativeTransform.build_insert(context))

    assert encode(faster) == encode(plain)
    assert faster_type(get_from_name("DateTime64(6)")) == get_from_name("DateTime64(6)")
    assert type(faster_type(get_from_name("Decimal(38, 9)"))) is type(get_from_name("Decimal(38, 9)"))
